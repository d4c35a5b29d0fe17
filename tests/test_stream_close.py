"""A stream closed from another thread (a closed browser tab) frees the local model for the next question."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from assistant.llms.llamacpp import LlamaCppChat
from assistant.streams import driven
from tests.helpers.models import smollm2_path

NEXT_ANSWER_SECONDS = 30  # the bound for the next question after a closed tab


def _in_thread(work: object) -> None:
    thread = threading.Thread(target=work)  # type: ignore[arg-type]
    thread.start()
    thread.join()


def test_a_stream_closed_in_another_thread_frees_the_lock() -> None:
    lock = threading.RLock()  # reentrant, as the model's: only its owner may release it
    began = threading.Event()

    def source() -> Iterator[int]:
        began.set()
        yield from range(1_000_000)

    stream = driven(source, lock)
    _in_thread(lambda: next(stream))  # read in one thread ...
    _in_thread(stream.close)  # ... closed in another, as Gradio does
    assert began.is_set()
    assert lock.acquire(timeout=5), "the lock is still held after the stream was closed"
    lock.release()


def test_an_error_in_the_source_reaches_the_reader() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(driven(source, threading.Lock()))


@pytest.mark.slow
def test_local_model_answers_after_a_stream_is_closed_from_another_thread() -> None:
    llm = LlamaCppChat(model_path=str(smollm2_path()), threads=2, max_tokens=400)
    ask = [ChatMessage(role=MessageRole.USER, content="Write a long story about a lighthouse keeper.")]
    stream = llm.stream_chat(ask)
    first: list[str] = []
    _in_thread(lambda: first.append(next(stream).delta or ""))  # the reply has begun streaming
    _in_thread(stream.close)  # the tab is closed: the server closes the stream from another thread
    answered: list[str] = []
    worker = threading.Thread(
        target=lambda: answered.append(llm.chat(ask, max_tokens=8).message.content or "")
    )
    worker.daemon = True
    worker.start()
    worker.join(NEXT_ANSWER_SECONDS)
    assert first and answered, f"the next question got no answer within {NEXT_ANSWER_SECONDS} s"
