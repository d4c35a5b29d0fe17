"""Real servers for the benchmarks and the tests: a free 127.0.0.1 port, a bounded wait, always stopped.

In `harness/`, not under tests/ or bench/, because both use them and neither imports the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar


class ServerError(RuntimeError):
    """A server exited or did not answer in time; the message holds the end of its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a server, killing it if it does not stop within 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextmanager
def running(
    argv: Sequence[str],
    ready_url: str,
    log: Path,
    timeout: float,
    context: ssl.SSLContext | None = None,
    **popen: Any,
) -> Iterator[None]:
    """Run `argv` (output to `log`) until `ready_url` answers 200; raise `ServerError` after `timeout` s.

    An https `ready_url` is checked with `context` (one that trusts the server's certificate).
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, **popen)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise ServerError(f"{argv[:4]} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=5, context=context) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{argv[:4]} did not serve {ready_url} within {timeout:.0f} s:\n{log.read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield
    finally:
        stop(proc)


CHROMA = Path(sys.executable).with_name("chroma")


@contextmanager
def chroma(path: Path, log: Path, timeout: float = 120) -> Iterator[int]:
    """Run `chroma run` on `path` on a free loopback port; yield the port."""
    port = free_port()
    argv = [str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    with running(argv, f"http://127.0.0.1:{port}/api/v2/heartbeat", log, timeout=timeout):
        yield port


@contextmanager
def ray_cluster(nodes: int, cpus: int = 1, head_cpus: int | None = None) -> Iterator[Any]:
    """Run a Ray cluster of `nodes` nodes of `cpus` CPUs each on this machine; yield it (`.address`).

    `head_cpus` gives the head node another count: 0 keeps every task that needs a CPU off it.

    `ray.cluster_utils.Cluster`: a head and worker nodes, each its own raylet and processes, as
    `ray start` makes them; every process it started is killed afterwards (by process id).
    """
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=False, connect=False)
    try:
        for n in range(nodes):
            head = {"include_dashboard": False, "num_cpus": cpus if head_cpus is None else head_cpus}
            add_node(cluster, **(head if n == 0 else {"num_cpus": cpus}))
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def add_node(cluster: Any, attempts: int = 3, **node_args: Any) -> None:
    """Add a node, again if it did not start: Ray gives a raylet 30 s to register, which a loaded
    machine can miss; what a failed try started is killed by process id."""
    for attempt in range(attempts):
        before = descendants()
        try:
            cluster.add_node(**node_args)
            return
        except Exception:
            for pid in descendants() - before:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if attempt == attempts - 1:
                raise


def descendants() -> set[int]:
    """Return the ids of every process below this one (read from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
    found: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


# --- a fake hosted model: OpenAI's chat-completions protocol, deterministic and slow on purpose ---

_PASSAGE = re.compile(r"^\[arXiv:([^\]\s]+)\][^\n]*\n([^\n]+)", re.MULTILINE)
_QUESTION = re.compile(r"^Question: (.+)$", re.MULTILINE)
_FOLLOW_UP = re.compile(r"^Follow-up question: (.+)$", re.MULTILINE)
_EARLIER = re.compile(r"^User: (.+)$", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def fake_reply(prompt: str) -> str:
    """Answer like a model that follows the prompt: echo the question, then quote the first passage's
    sentence that shares the most words with it, cited to that passage (so the answer checks out).

    A condense prompt (a follow-up) gets the follow-up with the last earlier question appended.
    """
    if follow_up := _FOLLOW_UP.search(prompt):
        earlier = _EARLIER.findall(prompt)
        return f"{follow_up[1]} {earlier[-1]}" if earlier else follow_up[1]
    question = _QUESTION.search(prompt)
    # A condensed follow-up holds two questions: one sentence, so the echo is not split off uncited.
    asked = question[1].strip().rstrip("?.").replace("?", ",") if question else "This"
    passages = _PASSAGE.findall(prompt)
    if not passages:
        return "The indexed abstracts do not answer this question."
    arxiv_id, text = passages[0]
    words = set(_WORD.findall(asked.lower()))
    best = max(_SENTENCE_END.split(text), key=lambda s: len(words & set(_WORD.findall(s.lower()))))
    return f"{asked}: {best.strip().rstrip('.')} [arXiv:{arxiv_id}]."


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that sends whole bodies and logs nothing."""

    def send(self, status: int, body: bytes, content_type: str) -> None:
        """Send `body` with its status, type and length."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Keep the test output quiet."""


Server = TypeVar("Server", bound=ThreadingHTTPServer)


@contextmanager
def in_background(server: Server) -> Iterator[Server]:
    """Serve from a daemon thread; shut the server down and close it afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class FakeOpenAI(ThreadingHTTPServer):
    """An OpenAI-compatible chat server on 127.0.0.1 whose replies come in words, `delay` s apart.

    It records the peak number of requests it was answering at once.
    """

    daemon_threads = True

    def __init__(self, delay: float = 0.03) -> None:
        super().__init__(("127.0.0.1", 0), _FakeOpenAIHandler)
        self.delay = delay
        self.requests = 0
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """Return the base URL an OpenAI client is given (`.../v1`)."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _FakeOpenAIHandler(QuietHandler):
    server: FakeOpenAI

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        messages = body["messages"]
        system = str(messages[0]["content"]) if messages[0]["role"] == "system" else ""
        # A judge's question (assistant/llms/judge.py's system prompts) gets "Yes": the fake trusts its own
        # answers; the judge's own tests use a real model.
        judged = system.endswith("Answer only Yes or No.")
        reply = "Yes" if judged else fake_reply(str(messages[-1]["content"]))
        fake = self.server
        with fake.lock:
            fake.requests += 1
            fake.active += 1
            fake.peak = max(fake.peak, fake.active)
        try:
            if body.get("stream"):
                self._stream(reply, body.get("model", "fake"))
            else:
                time.sleep(fake.delay)
                message = {"role": "assistant", "content": reply}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                reply_json = {"id": "fake", "object": "chat.completion", "created": 0,
                              "model": body.get("model", "fake"), "choices": [choice]}  # fmt: skip
                self.send(200, json.dumps(reply_json).encode(), "application/json")
        finally:
            with fake.lock:
                fake.active -= 1

    def _stream(self, reply: str, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0 without a length: the stream ends when the connection closes
        words = reply.split(" ")
        for n, word in enumerate(words):
            time.sleep(self.server.delay)
            delta = {"role": "assistant", "content": word if n == 0 else f" {word}"}
            self._event(model, delta, None)
        self._event(model, {}, "stop")
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, model: str, delta: dict[str, str], finish: str | None) -> None:
        chunk = {"id": "fake", "object": "chat.completion.chunk", "created": 0, "model": model,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())


@contextmanager
def fake_openai(delay: float = 0.03) -> Iterator[FakeOpenAI]:
    """Serve a `FakeOpenAI` from a background thread; shut it down afterwards."""
    with in_background(FakeOpenAI(delay)) as server:
        yield server
