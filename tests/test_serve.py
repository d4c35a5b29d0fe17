"""`assistant serve` as a user starts it: the port checked first, the login from a file, TLS, and only
its own Host and Origin answered (DNS rebinding)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import child_env

pytestmark = pytest.mark.slow  # real `assistant serve` processes

# `assistant ARGS`, then the heavy libraries it had loaded: a refusal must come before any of them.
PROBE = """
import sys
from assistant.cli import main
code = main(sys.argv[1:])
print(",".join(m for m in ("chromadb", "onnxruntime", "llama_cpp") if m in sys.modules))
sys.exit(code)
"""


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `assistant ARGS` in a child; its stdout is the heavy libraries it loaded."""
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=child_env() | {"ASSISTANT_LLM": "extractive"} | (env or {}),
        timeout=300,
    )


# --- the port, checked before anything slow loads -------------------------------------------


def test_a_port_in_use_is_one_line_before_any_model_loads(seed_store: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = probe("serve", "--store", str(seed_store), "--port", str(port))
    assert (out.returncode, out.stdout) == (1, "\n"), out.stderr  # nothing heavy was loaded
    assert out.stderr == (
        f"assistant: error: port {port} on 127.0.0.1 is in use: stop what listens there, "
        "or give another --port\n"
    )


def test_a_port_out_of_range_is_one_line(seed_store: Path) -> None:
    out = probe("serve", "--store", str(seed_store), "--port", "99999")
    assert (out.returncode, out.stdout) == (1, "\n"), out.stderr
    assert out.stderr == "assistant: error: --port 99999: give a port from 1 to 65535\n"


def test_an_address_not_of_this_machine_is_one_line(seed_store: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: never assigned, so never an address of this machine.
    out = probe("serve", "--store", str(seed_store), "--host", "192.0.2.7", "--insecure")
    assert (out.returncode, out.stdout) == (1, "\n"), out.stderr
    assert out.stderr.startswith("assistant: error: cannot listen on 192.0.2.7:7860 (")
    assert out.stderr.count("\n") == 1 and "give another --host" in out.stderr
