"""Real model servers on 127.0.0.1 for tests: llama-cpp-python's OpenAI-compatible server (embeddings,
chat), and a small server speaking text-embeddings-inference's `/embed` and `/rerank` (no TEI binary
installs here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from assistant.embeddings import MiniLMEmbedding
from harness.servers import QuietHandler, free_port, in_background, running
from tests.helpers.models import smollm2_path

# llama-cpp-python's server with mean pooling, which its command line cannot set: a causal model like
# SmolLM2 has no pooling of its own, and without one the server answers a vector per token, not per text.
LLAMA_EMBED_SERVER = """
import functools, sys
import llama_cpp
llama_cpp.Llama.__init__ = functools.partialmethod(
    llama_cpp.Llama.__init__, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN
)
from llama_cpp.server.__main__ import main
sys.argv[0] = "llama_cpp.server"
main()
"""


@contextmanager
def llama_embedding_server(log: Path) -> Iterator[str]:
    """Serve SmolLM2 embeddings with llama-cpp-python's server; yield its `/v1` base URL."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("pip install -e '.[local]'")
    port = free_port()
    argv = [sys.executable, "-c", LLAMA_EMBED_SERVER, "--model", str(smollm2_path()), "--embedding", "true"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512", "--n_threads", "2"]
    with running(argv, f"http://127.0.0.1:{port}/v1/models", log, timeout=120):
        yield f"http://127.0.0.1:{port}/v1"


@contextmanager
def llama_chat_server(model: Path, log: Path, *, n_ctx: int = 4096, logprobs: bool = False) -> Iterator[str]:
    """Serve `model` for chat with llama-cpp-python's server (a hosted model's protocol); yield `/v1`.

    With `logprobs`, the server keeps every position's logits, which it needs to return them.
    """
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("pip install -e '.[local]'")
    port = free_port()
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", "2"]
    argv += ["--logits_all", "true"] if logprobs else []
    with running(argv, f"http://127.0.0.1:{port}/v1/models", log, timeout=300):
        yield f"http://127.0.0.1:{port}/v1"


class TEIServer(ThreadingHTTPServer):
    """text-embeddings-inference's HTTP API, backed by the bundled MiniLM.

    `/embed` answers MiniLM vectors; `/rerank` scores each text by its MiniLM cosine to the query
    (a stand-in for a cross-encoder: the protocol is what is under test). Paths in `fail` answer 500.
    """

    daemon_threads = True

    def __init__(self, model: MiniLMEmbedding) -> None:
        super().__init__(("127.0.0.1", 0), _TEIHandler)
        self.model = model
        self.fail: set[str] = set()
        self.reranked: list[list[str]] = []  # the texts of each /rerank request

    @property
    def url(self) -> str:
        """Return the base URL (no `/v1`: TEI's routes are at the root)."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _TEIHandler(QuietHandler):
    server: TEIServer

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.send(200 if self.path == "/health" else 404, b"", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if self.path in self.server.fail:
            self.send(500, json.dumps({"error": "model overloaded"}).encode(), "application/json")
            return
        if self.path == "/embed":
            inputs = body["inputs"]
            texts = [inputs] if isinstance(inputs, str) else inputs
            self.send(200, json.dumps(self.server.model.embed(texts).tolist()).encode(), "application/json")
        elif self.path == "/rerank":
            self.server.reranked.append(body["texts"])
            vectors = self.server.model.embed([body["query"], *body["texts"]])
            scores = vectors[1:] @ vectors[0]
            order = np.argsort(-scores)
            ranked = [{"index": int(i), "score": float(scores[i])} for i in order]
            self.send(200, json.dumps(ranked).encode(), "application/json")
        else:
            self.send(404, b"{}", "application/json")


@contextmanager
def tei_server(model: MiniLMEmbedding) -> Iterator[TEIServer]:
    """Serve a `TEIServer` from a background thread; shut it down afterwards."""
    with in_background(TEIServer(model)) as server:
        yield server
