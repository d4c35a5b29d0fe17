"""The CI skip policy: under CI=true a skip that is not allowed fails the run; elsewhere it is a note."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers.ci_skips import ALLOWED, ALLOWED_MARKERS
from tests.helpers.cli import child_env
from tests.helpers.settings import ROOT

SAMPLE = """
import pytest

def test_runs():
    pass

def test_needs_a_browser():
    pytest.skip("needs /usr/bin/chromium")
"""
SKIPPED_MODULE = """
import pytest

pytest.importorskip("no_such_extra_installed", reason="pip install -e '.[hosted]'")

def test_hosted():
    pass
"""


def run_pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """Run pytest on `folder` with the policy plugin, CI set to `ci` (None: unset)."""
    env = {k: v for k, v in child_env().items() if k != "CI"} | ({"CI": ci} if ci is not None else {})
    # Only the policy plugin: starting every installed plugin takes a minute on a busy machine.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    flags = [
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        "-p",
        "tests.helpers.ci_skips",
        "--continue-on-collection-errors",
    ]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *flags],
        capture_output=True,
        text=True,
        cwd=folder,
        env=env,
        timeout=120,
    )


# Left out by marker as pyproject's addopts leaves out `gemma` and `ray`; `gpu` is allowed nowhere.
MARKED = """
import pytest

def test_runs():
    pass

@pytest.mark.gemma
def test_needs_the_gemma_build():
    pass

@pytest.mark.ray
def test_needs_a_cluster():
    pass

@pytest.mark.gpu
def test_needs_a_gpu():
    pass
"""
LEAVING_OUT = """
[pytest]
markers =
    gemma: the EmbeddingGemma build
    ray: a Ray cluster
    gpu: a GPU
addopts = -m "{expression}"
"""


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    """A folder of tests: one that runs, one that skips itself, a module skipped at import."""
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "test_hosted.py").write_text(SKIPPED_MODULE)
    return tmp_path


@pytest.mark.slow
def test_skips_fail_the_run_under_ci(samples: Path) -> None:
    out = run_pytest(samples, "true")
    assert out.returncode == 1, out.stdout
    assert "skipped under CI=true (needs /usr/bin/chromium)" in out.stdout
    assert "skipped under CI=true (pip install -e '.[hosted]')" in out.stdout
    assert "1 passed" in out.stdout and "1 failed" in out.stdout and "1 error" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("ci", [None, "false"])
def test_skips_are_notes_elsewhere(samples: Path, ci: str | None) -> None:
    out = run_pytest(samples, ci)
    assert out.returncode == 0, out.stdout
    assert "1 passed, 2 skipped" in out.stdout


def test_every_allowed_skip_names_a_real_test_and_a_reason() -> None:
    for nodeid, reason in ALLOWED.items():
        path, _, name = nodeid.partition("::")
        tree = ast.parse((ROOT / path).read_text())
        assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, nodeid
        assert len(reason) > 20, nodeid


def marked(folder: Path, expression: str) -> Path:
    """A folder of tests marked gemma, ray and gpu, and a config leaving out what `expression` says."""
    (folder / "pytest.ini").write_text(LEAVING_OUT.format(expression=expression))
    (folder / "test_marked.py").write_text(MARKED)
    return folder


@pytest.mark.slow
def test_tests_left_out_by_a_marker_not_allowed_fail_the_run_under_ci(tmp_path: Path) -> None:
    folder = marked(tmp_path, "not gemma and not ray and not gpu")
    out = run_pytest(folder, "true")
    assert out.returncode == 1, out.stdout
    assert "1 passed, 3 deselected" in out.stdout
    assert "1 marked gpu: left out under CI=true; run them in CI, or allow the marker" in out.stdout
    # The allowed ones are not silent either: each is named, with where it runs or why not in CI.
    assert "1 marked gemma: not run in CI: needs the EmbeddingGemma build" in out.stdout
    assert "1 marked ray: run by `make test-ray`" in out.stdout


@pytest.mark.slow
def test_allowed_markers_pass_under_ci_and_everything_is_a_note_elsewhere(tmp_path: Path) -> None:
    allowed = run_pytest(marked(tmp_path, "not gemma and not ray"), "true")
    assert allowed.returncode == 0, allowed.stdout
    assert "1 marked gemma: not run in CI" in allowed.stdout and "2 passed, 2 deselected" in allowed.stdout
    local = run_pytest(marked(tmp_path, "not gemma and not ray and not gpu"), None)
    assert local.returncode == 0, local.stdout
    assert "1 marked gpu: not allowed in CI (a note here: CI is not set)" in local.stdout
    # A test chosen with -m (make test-ray) leaves the others out by their lack of it: no marker to blame.
    chosen = run_pytest(marked(tmp_path, "ray"), "true")
    assert chosen.returncode == 0 and "left out by marker" not in chosen.stdout, chosen.stdout


def test_make_test_leaves_out_only_allowed_markers() -> None:
    """pyproject's addopts names only markers allowed with a reason, and each of them is registered."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    expression = re.search(r"-m '([^']*)'", options["addopts"])
    assert expression is not None, options["addopts"]
    left_out = set(re.findall(r"[A-Za-z_]\w*", expression[1])) - {"and", "or", "not"}
    assert left_out == {"gemma", "ray"} and left_out <= set(ALLOWED_MARKERS)
    registered = {line.split(":")[0] for line in options["markers"]}
    assert set(ALLOWED_MARKERS) <= registered
    assert all(len(reason) > 20 for reason in ALLOWED_MARKERS.values())
