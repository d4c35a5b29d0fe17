"""A model's yes/no judgement read as the probability of "yes": does a text entail a claim, does it answer
a question. One forward pass, no sampling: the first token's log-probabilities where the model gives
them (in-process llama.cpp; OpenAI and compatible servers' `logprobs`), else a reply held to yes/no.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from assistant.errors import LLMError
from assistant.llms.llamacpp import LlamaCppChat

if TYPE_CHECKING:
    from llama_index.core.llms.llm import LLM

ENTAILMENT_SYSTEM = "You check claims against a paper abstract. Answer only Yes or No."
ENTAILMENT_USER = (
    "Abstract: {evidence}\n\nClaim: {claim}\n\n"
    "Is the claim fully supported by the abstract, with nothing contradicted? Answer Yes or No."
)
ANSWERABLE_SYSTEM = (
    "You check whether passages from paper abstracts answer a question. Answer only Yes or No."
)
ANSWERABLE_USER = (
    "Passages: {evidence}\n\nQuestion: {question}\n\n"
    "Do the passages state the answer to the question? Answer Yes or No."
)
_WORD = re.compile(r"[a-z]+")
YES, NO = "yes", "no"


class JudgeError(LLMError):
    """The judge could not give a judgement (server down, no log-probabilities, an unclear reply)."""


class Judge(ABC):
    """A model asked yes/no questions about evidence; `name` says who judged."""

    name: str

    @abstractmethod
    def yes_probability(self, system: str, user: str) -> float:
        """Return the probability that the model's reply to `system` + `user` is yes."""

    def entailment(self, claim: str, evidence: str) -> float:
        """Return the probability that `evidence` (an abstract, or its sentences) entails `claim`."""
        return self.yes_probability(ENTAILMENT_SYSTEM, ENTAILMENT_USER.format(evidence=evidence, claim=claim))

    def answerable(self, question: str, evidence: str) -> float:
        """Return the probability that `evidence` (passages) states the answer to `question`."""
        return self.yes_probability(
            ANSWERABLE_SYSTEM, ANSWERABLE_USER.format(evidence=evidence, question=question)
        )


class LocalJudge(Judge):
    """An in-process llama.cpp model (built on first use): P(yes) from the last position's logits."""

    def __init__(self, llm: Callable[[], LLM], name: str) -> None:
        self._llm = llm
        self.name = name

    def yes_probability(self, system: str, user: str) -> float:
        """Return P(yes) from one forward pass of the local model."""
        model = self._llm()
        if not isinstance(model, LlamaCppChat):
            raise JudgeError(f"{self.name} is not an in-process llama.cpp model")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return model.yes_probability(messages)


class HostedJudge(Judge):
    """A hosted model: P(yes) from `top_logprobs` of the first token, else its reply held to yes/no."""

    def __init__(self, llm: Callable[[], LLM], name: str, describe: Callable[[BaseException], str]) -> None:
        self._llm = llm
        self.name = name
        self._describe = describe  # says a failure in one line without the API key
        self._logprobs = True  # until the server shows it gives none

    def yes_probability(self, system: str, user: str) -> float:
        """Ask once; read the first token's log-probabilities, or the word the reply starts with."""
        from llama_index.core.base.llms.types import ChatMessage, MessageRole

        messages = [
            ChatMessage(role=MessageRole.SYSTEM, content=system),
            ChatMessage(role=MessageRole.USER, content=user),
        ]
        options: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0}
        if self._logprobs:
            options |= {"logprobs": True, "top_logprobs": 10}
        try:
            response = self._llm().chat(messages, **options)
        except AttributeError as exc:  # the OpenAI SDK hands a body that is not JSON back as text
            if "'str' object" not in str(exc):
                raise
            raise JudgeError("JSONDecodeError: the server's reply is not a JSON chat completion") from None
        except Exception as exc:  # any failure of a remote service: the caller falls back, said in one line
            raise JudgeError(self._describe(exc)) from None  # said as "{name} failed (...)"
        if self._logprobs and (p := _from_logprobs(response.raw)) is not None:
            return p
        self._logprobs = False
        word = _first_word(response.message.content or "")
        if word not in (YES, NO):
            raise JudgeError(f"the judge {self.name} answered {word!r}, not yes or no")
        return 1.0 if word == YES else 0.0


def _first_word(text: str) -> str:
    match = _WORD.search(text.lower())
    return match.group(0) if match else ""


def _from_logprobs(raw: Any) -> float | None:
    """P(yes) / (P(yes) + P(no)) over the first token's alternatives; None if the reply has none."""
    try:
        first = raw.choices[0].logprobs.content[0]
        alternatives: Sequence[Any] = first.top_logprobs or [first]
    except (AttributeError, IndexError, TypeError):
        return None
    mass = {YES: 0.0, NO: 0.0}
    for alternative in alternatives:
        word = _first_word(alternative.token)
        if word in mass and alternative.token.strip().lower() == word:
            mass[word] += math.exp(alternative.logprob)
    if not mass[YES] and not mass[NO]:
        return None if not alternatives else 0.0
    return mass[YES] / (mass[YES] + mass[NO])
