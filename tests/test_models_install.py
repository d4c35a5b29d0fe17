"""`make gemma` / `assistant models install embeddinggemma`: the licence asked once, a progress bar,
a finished build kept. The 21-minute build itself is `make test-gemma`'s; here nothing is downloaded."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assistant.cli import main as cli
from assistant.embeddings import gemma
from assistant.embeddings.gemma import __main__ as gemma_cli
from assistant.embeddings.gemma import build as gemma_build


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_the_terms_are_asked_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))  # not a terminal: no question, the flag is needed
    with pytest.raises(gemma.AssistantError, match="--accept-gemma-terms"):
        gemma_cli.agree(False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    with pytest.raises(gemma.AssistantError, match="not accepted"):
        gemma_cli.agree(False)
    assert not gemma_cli.terms_file().exists()
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    gemma_cli.agree(False)
    assert "Gemma Terms of Use" in gemma_cli.terms_file().read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # answered: never asked again
    gemma_cli.agree(False)
    assert "Gemma Terms of Use: accepted " in capsys.readouterr().err


def test_progress_bar_counts_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    progress = gemma_build.Progress(total=4, width=8)
    for label in ("wheel 1/2", "wheel 2/2", "export", "check"):
        progress.step(label)
    lines = capsys.readouterr().err.splitlines()  # not a terminal: a line per step
    assert lines[0].startswith("[##......] 1/4 wheel 1/2") and lines[-1].startswith("[########] 4/4 check")
    assert len(gemma_build.WHEEL_SHA256) + 6 == gemma_build.STEPS


def test_a_finished_build_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    folder = gemma.model_dir()
    folder.mkdir(parents=True)
    (folder / gemma.MANIFEST).write_text("{}")
    assert gemma_cli.main(["build"]) == 0  # no terms asked, nothing built
    assert "use it with --config embeddinggemma" in capsys.readouterr().err
    assert cli(["models", "install", "embeddinggemma"]) == 0
    assert "--config embeddinggemma" in capsys.readouterr().out


def test_install_without_torch_runs_make_gemma(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Any] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append((command, kwargs["env"].get("GEMMA_TERMS")))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert cli(["models", "install", "embeddinggemma", "--accept-gemma-terms"]) == 0
    [(command, terms)] = ran
    assert command[0] == "make" and command[-1] == "gemma" and terms == "accept"
    assert (Path(command[2]) / "Makefile").read_text().count("\ngemma:") == 1
