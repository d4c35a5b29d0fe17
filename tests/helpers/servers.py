"""Stub model servers for the tests: scripted OpenAI-compatible answers on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness.servers import QuietHandler, in_background


@contextmanager
def stub_server(handler: type[BaseHTTPRequestHandler], **attributes: Any) -> Iterator[ThreadingHTTPServer]:
    """Serve `handler` on a free 127.0.0.1 port with `attributes` set on the server and `.url` its /v1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    for name, value in attributes.items():
        setattr(server, name, value)
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    with in_background(server):
        yield server


class Scripted(QuietHandler):
    """OpenAI's chat-completions protocol: streams `server.pieces`, or fails the way `server.mode` says.

    Asked as the judge (a system prompt ending "Answer only Yes or No."), it says `server.verdict`
    ("Yes" unless set): a scripted judge, so the answers under test are shown.
    """

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        mode, pieces = self.server.mode, self.server.pieces  # type: ignore[attr-defined]
        system = next((m.get("content") for m in body.get("messages", []) if m.get("role") == "system"), "")
        if mode not in ("401", "500") and str(system).endswith("Answer only Yes or No."):
            pieces = [getattr(self.server, "verdict", "Yes")]
        if mode == "401":  # the worst case: the error message quotes the key it was sent
            key = self.headers.get("Authorization", "").removeprefix("Bearer ")
            error = {"error": {"message": f"Incorrect API key provided: {key}", "code": "invalid_api_key"}}
            return self.send(401, json.dumps(error).encode(), "application/json")
        if mode == "500":  # a plain-text error the SDK quotes as it is: it would drive the terminal
            return self.send(500, "upstream \x1b]0;pwned\x07exploded\x1b[2J \x9b31m".encode(), "text/plain")
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(pieces)}
            reply = {"id": "x", "object": "chat.completion", "created": 0, "model": "stub",
                     "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip
            return self.send(200, json.dumps(reply).encode(), "application/json")
        deltas = [{"role": "assistant", "content": piece} for piece in pieces] + [{}]
        chunks = [
            {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "stub",
             "choices": [{"index": 0, "delta": delta, "finish_reason": None if delta else "stop"}]}
            for delta in deltas
        ]  # fmt: skip
        stream = b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks) + b"data: [DONE]\n\n"
        self.send(200, stream, "text/event-stream")
