"""Load: 16 chats at once through `gradio_client` against `assistant serve` (extractive, fake hosted).

Every reply must be right and its own: its question, its paper cited first, the same answer as when
asked alone, and (fake model) the text the model wrote for its question and no other. bench/load.py
runs the same chats (harness/chats.py) for latency figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.embeddings import MiniLMEmbedding
from assistant.pipeline import Assistant
from harness.chats import BURST_SECONDS, at_once, chats, mismatches, one_by_one, problems, serving
from harness.servers import FakeOpenAI, fake_openai
from tests.helpers.settings import make_settings

FAKE_DELAY = 0.02  # between the fake model's words: ~0.3 s a reply, time to overlap


def test_every_answering_event_shares_the_configured_limit(seed_store: Path, embed: MiniLMEmbedding) -> None:
    from assistant.web.ui import ANSWERING, build

    app = build(Assistant(make_settings(seed_store, **{"serve.concurrency": 3}), embed_model=embed))
    limited = [fn for fn in app.fns.values() if fn.concurrency_limit != "default"]
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in limited} == {(ANSWERING, 3)}
    assert {"chat", "respond"} <= {fn.api_name for fn in limited}, "the API and the page's answers"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    """The fake hosted model, for the module."""
    with fake_openai(FAKE_DELAY) as server:
        yield server


def _burst(url: str, backend: str, *, echoes: bool) -> None:
    conversations = chats()
    assert len(conversations) == 16
    reference, _ = one_by_one(url, conversations)  # also warms every path up
    assert not problems(reference, backend, echoes=echoes), "wrong even one at a time"
    replies, seconds = at_once(url, conversations)
    assert len(replies) == len(reference)
    assert not problems(replies, backend, echoes=echoes)
    assert not mismatches(replies, reference)
    assert seconds < BURST_SECONDS


@pytest.mark.slow
def test_sixteen_chats_at_once_extractive(tmp_path: Path) -> None:
    with serving(tmp_path, "extractive") as url:
        _burst(url, "extractive", echoes=False)


@pytest.mark.slow
def test_sixteen_chats_at_once_fake_hosted_model(tmp_path: Path, fake: FakeOpenAI) -> None:
    backend = f"openai-compatible:fake@{fake.url}"
    with serving(tmp_path, backend) as url:
        fake.peak = 0
        _burst(url, backend, echoes=True)
    # Answers overlapped, and never more of them than the configured limit.
    assert 2 <= fake.peak <= Settings().serve.concurrency
