"""A deterministic LLM for pipeline tests: it replies with queued texts and records what it was sent."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from llama_index.core.base.llms.types import (
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from pydantic import PrivateAttr

from assistant.llms import Backend
from tests.helpers.fake_judge import entailed_by_words


class QueuedLLM(CustomLLM):
    """Replies with the next queued text, streamed word by word; an exception in the queue is raised.

    Asked as the judge (its system prompt ends "Answer only Yes or No."), it answers by the word rule
    of `WordJudge` (an answerability question: `verdict`) without touching the queue, and the prompt
    goes to `judged`, not `prompts`: a scripted judge beside the scripted answerer.
    """

    _replies: deque[str | Exception] = PrivateAttr(default_factory=deque)
    prompts: list[str] = []
    judged: list[str] = []
    verdict: str = "Yes"

    def __init__(self, replies: Iterable[str | Exception] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._replies.extend(replies)
        self.prompts = []
        self.judged = []

    @property
    def metadata(self) -> LLMMetadata:
        """Describe the fake as a chat model."""
        return LLMMetadata(model_name="fake", is_chat_model=True)

    def _next(self, prompt: str) -> str:
        if "Answer only Yes or No." in prompt:
            self.judged.append(prompt)
            if "\n\nClaim: " in prompt:
                return "Yes" if entailed_by_words(prompt) else "No"
            return self.verdict
        self.prompts.append(prompt)
        reply = self._replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Return the next queued reply."""
        return CompletionResponse(text=self._next(prompt))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Return the next queued reply in word-sized pieces."""
        reply = self._next(prompt)

        def pieces() -> CompletionResponseGen:
            text = ""
            for word in reply.split(" "):
                delta = word if not text else f" {word}"
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return pieces()


def fake_backend(*replies: str | Exception, hosted: bool = True) -> tuple[Backend, QueuedLLM]:
    """Return a backend named `fake` answering with `replies`, and its LLM to inspect."""
    llm = QueuedLLM(replies)
    return Backend("fake", lambda: llm, hosted=hosted), llm
