"""The CI skip policy: under CI=true a skip that is not allowed fails the run; elsewhere it is a note."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.ci_skips import ALLOWED
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
