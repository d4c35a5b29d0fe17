"""The `assistant` command run as a user runs it: a real process importing this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.cli import main
from tests.helpers.settings import ROOT


def child_env() -> dict[str, str]:
    """The environment of a child Python that imports this checkout, without developer settings or keys."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    return clean | {"PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}


def run(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | bytes | None = None,
    cwd: Path | None = None,
    preexec: Callable[[], None] | None = None,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run `assistant ARGS` (after `prefix`): extractive answers unless `env` picks a model.

    `stdin` as bytes is sent as it is (to test undecodable input); the output is read as UTF-8.
    """
    raw = isinstance(stdin, bytes)
    out = subprocess.run(
        [*prefix, sys.executable, "-m", "assistant", *args],
        capture_output=True,
        input=stdin if raw else (stdin.encode("utf-8") if stdin is not None else None),
        cwd=cwd,
        env=child_env() | {"ASSISTANT_LLM": "extractive"} | (env or {}),
        timeout=300,
        preexec_fn=preexec,
    )
    return subprocess.CompletedProcess(
        out.args,
        out.returncode,
        out.stdout.decode("utf-8", errors="replace"),
        out.stderr.decode("utf-8", errors="replace"),
    )


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in this process (extractive answers); return exit code, stdout, stderr."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err
