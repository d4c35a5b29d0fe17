"""The hosted path against real servers on 127.0.0.1: llama.cpp's OpenAI-compatible server with the
bundled model, and one that misbehaves on purpose (5xx, refused key, malformed stream, silence)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from assistant import Answer, Assistant
from assistant.cli import main
from assistant.embeddings import MiniLMEmbedding
from assistant.llms.llamacpp import bundled_model_path
from harness.servers import QuietHandler, free_port, stop
from tests.helpers.models import QUESTION, RIGHT
from tests.helpers.servers import stub_server
from tests.helpers.settings import make_settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp.server") is None
        or importlib.util.find_spec("llama_index.llms.openai_like") is None,
        reason="pip install -e '.[local,hosted]'",
    ),
]
SERVER_START_TIMEOUT = 180.0
# The bundled model: the answer's checks withhold what a model that cannot cite (SmolLM2-135M) says.
MODEL = "qwen"


def start_server(model: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m llama_cpp.server` on a free port; return it and its `/v1` URL once it serves."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.25)
    stop(proc)
    pytest.fail(f"llama_cpp.server did not serve {url}/models within {SERVER_START_TIMEOUT:.0f} s")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp server with the bundled model for the whole module; yields its `/v1` URL."""
    proc, url = start_server(bundled_model_path(), tmp_path_factory.mktemp("server") / "server.log")
    try:
        yield url
    finally:
        stop(proc)


def hosted(seed_store: Path, embed: MiniLMEmbedding, url: str, timeout: float = 120.0) -> Assistant:
    """An assistant over the seed store answering through `openai-compatible:` at `url`."""
    settings = make_settings(
        seed_store,
        **{
            "answer.llm": f"openai-compatible:{MODEL}@{url}",
            "answer.timeout": timeout,
            # The wiring is under test, not the synthesis (test_answers_local): a short prompt and reply.
            "answer.max_tokens": 120,
            "answer.max_context_tokens": 500,
        },
    )
    return Assistant(settings, embed_model=embed)


def test_openai_compatible_server_streams_an_answer(
    llama_server: str, seed_store: Path, embed: MiniLMEmbedding
) -> None:
    bot = hosted(seed_store, embed, llama_server)
    *pieces, result = bot.stream(QUESTION)
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert isinstance(result, Answer)
    assert result.backend == f"openai-compatible:{MODEL}@{llama_server}"
    assert result.warnings == [] and "".join(pieces) == result.text  # what streamed is the answer
    assert result.citations[0] == RIGHT and "45" in result.text


def test_cli_asks_the_server(llama_server: str, seed_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"openai-compatible:{MODEL}@{llama_server}"
    assert main(["ask", "--store", str(seed_store), "--llm", spec, QUESTION]) == 0
    out = capsys.readouterr().out
    assert f"Sources ({spec} answer):" in out


def test_killing_the_server_mid_answer_falls_back_within_the_timeout(
    tmp_path: Path, seed_store: Path, embed: MiniLMEmbedding, capfd: pytest.CaptureFixture[str]
) -> None:
    proc, url = start_server(bundled_model_path(), tmp_path / "server.log")
    timeout = 60.0  # generous for the first token on a busy machine; the kill must beat it by far
    answers: list[Answer | str] = []
    try:
        bot = hosted(seed_store, embed, url, timeout)
        asking = threading.Thread(target=lambda: answers.extend(bot.stream(QUESTION)))
        idle = _cpu_ticks(proc)
        asking.start()
        # The server reads a 500-token prompt for seconds on 2 cores: kill it once it works on it.
        deadline = time.monotonic() + 30
        while _cpu_ticks(proc) - idle < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.kill()
        killed = time.monotonic()
        asking.join(timeout)
        elapsed = time.monotonic() - killed
    finally:
        stop(proc)
    *shown, result = answers
    assert isinstance(result, Answer)
    assert "".join(shown) == result.text  # only the fallback's sentences streamed, none of the killed model's
    assert elapsed < timeout
    assert result.backend == "extractive" and result.citations[0] == RIGHT
    assert result.warnings[0].startswith(f"openai-compatible:{MODEL}@{url} failed (")
    assert "answered with the extractive answerer" in capfd.readouterr().err


def _cpu_ticks(proc: subprocess.Popen[bytes]) -> int:
    """The CPU time the server process has used so far (user + system, in clock ticks), from /proc."""
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_a_server_that_is_not_running_falls_back_at_once(seed_store: Path, embed: MiniLMEmbedding) -> None:
    start = time.monotonic()
    result = hosted(seed_store, embed, f"http://127.0.0.1:{free_port()}/v1").ask(QUESTION)
    assert time.monotonic() - start < 5
    assert result.backend == "extractive" and "failed (APIConnectionError" in result.warnings[0]


# --- a server that misbehaves on purpose ----------------------------------------------------


class Misbehaving(QuietHandler):
    """Answers every chat request the way `server.mode` says: 500, 401, bad-stream or silent."""

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "silent":
            time.sleep(4)  # longer than the client's timeout; bounded so the test ends
            return
        if mode == "bad-stream":
            self.send(200, b"data: {not json at all\n\ndata: [DONE]\n\n", "text/event-stream")
            return
        if mode == "401":
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            body = {"error": {"message": f"Incorrect API key provided: {key}", "code": "invalid_api_key"}}
            self.send(401, json.dumps(body).encode(), "application/json")
            return
        self.send(500, b'{"error": {"message": "upstream exploded"}}', "application/json")


@pytest.fixture
def misbehaving() -> Iterator[ThreadingHTTPServer]:
    """A stub OpenAI-compatible server on 127.0.0.1; set `.mode` to choose how it fails."""
    with stub_server(Misbehaving) as server:
        yield server


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("500", "InternalServerError"),
        ("401", "AuthenticationError"),
        ("bad-stream", "JSONDecodeError"),
        ("silent", "APITimeoutError"),
    ],
)
def test_failing_server_falls_back_without_leaking_the_key(
    misbehaving: ThreadingHTTPServer,
    seed_store: Path,
    embed: MiniLMEmbedding,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    mode: str,
    reason: str,
) -> None:
    misbehaving.mode = mode  # type: ignore[attr-defined]
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "sk-test-TOPSECRET")
    url = f"http://127.0.0.1:{misbehaving.server_address[1]}/v1"
    start = time.monotonic()
    result = hosted(seed_store, embed, url, timeout=1.0).ask(QUESTION)
    assert time.monotonic() - start < 3.5
    assert result.backend == "extractive" and result.citations[0] == "2305.14387"
    assert f"failed ({reason}" in result.warnings[0]
    assert "TOPSECRET" not in result.warnings[0] + capfd.readouterr().err
