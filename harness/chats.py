"""Chats against `assistant serve` through `gradio_client`: the load test's and the load benchmarks' driver.

Each chat is one `gradio_client` session (as each browser tab is one) asking `/chat` turn by turn with
the conversation so far; replies are timed and checked to be right and their own.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness.servers import free_port, running

ROOT = Path(__file__).resolve().parent.parent

STARTUP_SECONDS = 120  # loading models and indexing the bundled abstracts on 2 shared cores
REQUEST_SECONDS = 120  # one reply, however long it waited in the server's queue
BURST_SECONDS = 120  # all 16 chats, generous: a busy machine must not fail the test


@dataclass(frozen=True)
class Turn:
    """A question and the papers that answer it."""

    question: str
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Reply:
    """What `/chat` returned for one turn of one chat, and how long it took."""

    chat: int
    turn: int
    question: str
    expected: tuple[str, ...]
    result: dict[str, Any]
    seconds: float


def chats() -> list[list[Turn]]:
    """Return the seed question set's answerable questions and conversations: 16 chats."""
    text = (resources.files("assistant") / "data" / "seed_questions.jsonl").read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        case = json.loads(line)
        turns = case.get("turns", [case])
        if all(t["expected_ids"] for t in turns):
            out.append([Turn(t["question"], tuple(t["expected_ids"])) for t in turns])
    return out


@contextmanager
def serving(
    folder: Path,
    llm: str,
    concurrency: int | None = None,
    *,
    env: dict[str, str] | None = None,
    startup: float = STARTUP_SECONDS,
) -> Iterator[str]:
    """Run this checkout's `assistant serve --llm llm` from `folder`; yield its URL.

    Without `env` (ASSISTANT_* settings, or another PYTHONPATH) it serves `folder`'s default store,
    indexed on start.
    """
    port = free_port()
    argv = [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--llm", llm]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_"))}
    folder.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    full = clean | {"PYTHONPATH": str(ROOT)} | (env or {})
    with running(argv, url, folder / "serve.log", startup, env=full, cwd=folder):
        yield url


def client(url: str) -> Any:
    """Connect a `gradio_client` session: one per chat, as each browser tab is one."""
    from gradio_client import Client

    return Client(url, verbose=False)


def converse(
    session: Any, chat: int, turns: list[Turn], start: threading.Barrier | None = None
) -> list[Reply]:
    """Ask `turns` in order in one session, each with the conversation so far; time each reply."""
    if start is not None:
        start.wait()
    history: list[dict[str, str]] = []
    replies = []
    for n, turn in enumerate(turns):
        began = time.perf_counter()
        job = session.submit(message=turn.question, history=history, api_name="/chat")
        result = job.result(timeout=REQUEST_SECONDS)
        replies.append(Reply(chat, n, turn.question, turn.expected, result, time.perf_counter() - began))
        history += [
            {"role": "user", "content": turn.question},
            {"role": "assistant", "content": result["answer"]},
        ]
    return replies


def at_once(url: str, conversations: list[list[Turn]]) -> tuple[list[Reply], float]:
    """Run every chat in its own session and thread, all released together; return replies and wall time."""
    with ThreadPoolExecutor(len(conversations)) as pool:
        sessions = list(pool.map(client, [url] * len(conversations)))
        start = threading.Barrier(len(conversations) + 1)
        futures = [
            pool.submit(converse, s, n, turns, start)
            for n, (s, turns) in enumerate(zip(sessions, conversations, strict=True))
        ]
        start.wait()
        began = time.perf_counter()
        _, late = wait(futures, timeout=BURST_SECONDS)
        if late:
            raise TimeoutError(f"{len(late)} of {len(futures)} chats unanswered after {BURST_SECONDS} s")
        return [r for f in futures for r in f.result()], time.perf_counter() - began


def one_by_one(url: str, conversations: list[list[Turn]]) -> tuple[list[Reply], float]:
    """Run the chats one after another in one session: the baseline; return replies and wall time."""
    session = client(url)
    began = time.perf_counter()
    replies = [r for n, turns in enumerate(conversations) for r in converse(session, n, turns)]
    return replies, time.perf_counter() - began


def problems(replies: list[Reply], backend: str, *, echoes: bool) -> list[str]:
    """Say what is wrong with each reply: another question, paper or backend, a fallback, a foreign text.

    `echoes`: the fake model writes each question into its answer, so an answer to another chat shows.
    """
    found = []
    for r in replies:
        res = r.result
        cited, retrieved = res["citations"], [p["arxiv_id"] for p in res["passages"]]
        where = f"chat {r.chat} turn {r.turn} ({r.question!r})"
        if res["question"] != r.question:
            found.append(f"{where}: answered {res['question']!r}")
        if res["backend"] != backend or res["warnings"]:
            found.append(f"{where}: backend {res['backend']}, warnings {res['warnings']}")
        if not cited or cited[0] not in r.expected or retrieved[:1] != cited[:1]:
            found.append(f"{where}: cites {cited}, retrieved {retrieved}, expected {r.expected}")
        if not set(cited) <= set(retrieved):
            found.append(f"{where}: cites {cited} beyond its sources {retrieved}")
        if echoes and r.question.rstrip("?.") not in res["answer"]:
            found.append(f"{where}: the answer was written for another question: {res['answer']!r}")
    return found


def mismatches(replies: list[Reply], reference: list[Reply]) -> list[str]:
    """Name the replies that differ from the same turn asked alone (timings aside: they always do)."""

    def same(result: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in result.items() if k != "timings"}

    alone = {(r.chat, r.turn): same(r.result) for r in reference}
    return [
        f"chat {r.chat} turn {r.turn}: {r.result} != {alone[r.chat, r.turn]} (asked alone)"
        for r in replies
        if same(r.result) != alone[(r.chat, r.turn)]
    ]
