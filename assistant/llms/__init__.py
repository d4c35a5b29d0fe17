"""The answerer registry: a short spec (`local`, `openai:gpt-4o-mini`, ...) -> a llama-index LLM.

SDKs are imported inside the provider that needs them, so `import assistant` stays light.

Package `llms`: this registry, the in-process llama.cpp chat model (`llamacpp`) and every fixed
text sent to a model or said about its answer (`prompts`: here, not in `answering/`, because the
local model is warmed with the system prompt and `retrieve.condense` sends a prompt too). It may
import the stages before it; it uses only the values modules.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import AnswerSettings
from assistant.errors import ConfigError, LLMError
from assistant.keys import COMPATIBLE_KEY_ENV, OPENAI_KEY_ENV, describe_failure, hosted_key
from assistant.llms.judge import HostedJudge, Judge, LocalJudge
from assistant.llms.llamacpp import (
    BUNDLED_NAME,
    INSTALL_LOCAL,
    LlamaCppChat,
    bundled_installed,
    bundled_model_path,
    llama_cpp_installed,
)
from assistant.llms.prompts import SYSTEM_PROMPT

if TYPE_CHECKING:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.llms.llm import LLM

VALID_FORMS = (
    "auto",
    "extractive",
    "local",
    "llamacpp:/path/to/model.gguf",
    "openai:MODEL",
    "openai-compatible:MODEL@http://host:port/v1",
    "ollama:MODEL",
)
INSTALL_HOSTED = "pip install -e '.[hosted]'"
_COMPATIBLE = re.compile(r"(?P<model>[^@\s]+)@(?P<url>https?://\S+)")


@dataclass
class Backend:
    """A chosen answerer: the name `Answer.backend` shows and, unless extractive, how to build its LLM."""

    name: str
    factory: Callable[[], LLM] | None = None
    # Hosted backends fail over to the extractive answerer; local ones raise (a local failure is a bug).
    hosted: bool = False
    secret: str | None = field(default=None, repr=False)
    _llm: LLM | None = field(default=None, init=False, repr=False)

    @property
    def extractive(self) -> bool:
        """Whether this is the built-in answerer that needs no model."""
        return self.factory is None

    def llm(self) -> LLM:
        """Build the LLM on first use (loading a local model takes seconds)."""
        if self.factory is None:
            raise LLMError("the extractive answerer has no LLM")
        if self._llm is None:
            self._llm = self.factory()
            if isinstance(self._llm, LlamaCppChat):
                self._llm.load()
        return self._llm

    @property
    def grammar_capable(self) -> bool:
        """Whether the model can be held to a GBNF grammar (in-process llama.cpp models)."""
        return self.factory is not None and not self.hosted

    def stream(
        self, messages: Sequence[ChatMessage], *, grammar: str | None = None, avoid: Sequence[str] = ()
    ) -> Generator[str]:
        """Yield the reply to `messages` piece by piece; a local model is held to the GBNF `grammar`
        and kept from starting any of the words in `avoid`."""
        kwargs: dict[str, Any] = {"grammar": grammar, "avoid": avoid} if grammar is not None else {}
        responses = self.llm().stream_chat(messages, **kwargs)
        try:
            for response in responses:
                if response.delta:
                    yield response.delta
        finally:
            # Stopping early (a refusal seen, a client gone) must end the generation and free the model.
            close = getattr(responses, "close", None)
            if close is not None:
                close()

    def describe_failure(self, exc: BaseException) -> str:
        """Say in one line, with no secret in it, why a call failed."""
        return describe_failure(exc, self.secret)


def resolve(settings: AnswerSettings, env: Mapping[str, str] | None = None) -> Backend:
    """Turn `settings.llm` into a backend, failing early with a message that says what to fix."""
    env = os.environ if env is None else env
    spec = settings.llm.strip()
    if spec == "auto":
        return resolve(settings.model_copy(update={"llm": _auto_choice(settings, env)}), env)
    kind, _, arg = spec.partition(":")
    if spec == "extractive":
        return Backend("extractive")
    if spec == "local":
        if not llama_cpp_installed():
            raise LLMError(f"the local model needs llama-cpp-python: run {INSTALL_LOCAL}")
        return Backend(f"local:{BUNDLED_NAME}", lambda: _llamacpp(bundled_model_path(), settings))
    if kind == "llamacpp" and arg:
        path = Path(arg).expanduser()
        if not path.is_file():
            raise LLMError(f"llamacpp: no model file at {str(path)!r}; give the path of a .gguf file")
        if not llama_cpp_installed():
            raise LLMError(f"llamacpp: needs llama-cpp-python: run {INSTALL_LOCAL}")
        return Backend(f"llamacpp:{path.name}", lambda: _llamacpp(path, settings))
    if kind == "openai" and arg:
        key = hosted_key(settings, env, OPENAI_KEY_ENV)
        if not key:
            raise LLMError(
                f"{spec} needs an API key: set {OPENAI_KEY_ENV} or answer.api_key_file (or use --llm local)"
            )
        _need("llama_index.llms.openai", spec)
        return Backend(spec, lambda: _openai(arg, key, settings), hosted=True, secret=key)
    if kind == "openai-compatible" and (match := _COMPATIBLE.fullmatch(arg)):
        key = hosted_key(settings, env, COMPATIBLE_KEY_ENV)
        _need("llama_index.llms.openai_like", spec)
        model, url = match["model"], match["url"]
        return Backend(
            spec, lambda: _openai_compatible(model, url, key, settings), hosted=True, secret=key or None
        )
    if kind == "ollama" and arg:
        _need("llama_index.llms.ollama", spec)
        return Backend(spec, lambda: _ollama(arg, settings), hosted=True)
    raise ConfigError(f"unknown answerer {spec!r}; use one of: {', '.join(VALID_FORMS)}")


def resolve_judge(settings: AnswerSettings, backend: Backend) -> Judge | None:
    """Return who checks each answer sentence (`answer.verifier`), or None when nobody does.

    An extractive answer needs no judge (its sentences are the abstracts' own). `auto` is the hosted
    answerer when one answers, else the bundled local model (shared with the answerer when that is
    the bundled model too), else nobody; `local` and `answerer` fail early when they cannot judge.
    """
    choice = settings.verifier
    if choice == "none" or backend.extractive:
        return None
    if choice == "answerer" or (choice == "auto" and (backend.hosted or backend.name.startswith("local:"))):
        return _judge_of(backend)
    if bundled_installed():
        if backend.name.startswith("local:"):
            return _judge_of(backend)
        bundled = Backend(f"local:{BUNDLED_NAME}", lambda: _llamacpp(bundled_model_path(), settings))
        return _judge_of(bundled)
    if choice == "local":
        raise LLMError(f"--verifier local needs the bundled model: run {INSTALL_LOCAL}")
    return None


def _judge_of(backend: Backend) -> Judge:
    """The judge that asks `backend`'s model (loaded on first use)."""
    if backend.hosted:
        return HostedJudge(backend.llm, backend.name, backend.describe_failure)
    return LocalJudge(backend.llm, backend.name)


def _auto_choice(settings: AnswerSettings, env: Mapping[str, str]) -> str:
    """Pick a configured hosted model, else the bundled local one if installed, else extractive."""
    hosted = settings.hosted.strip()
    if hosted and (not hosted.startswith("openai:") or hosted_key(settings, env, OPENAI_KEY_ENV)):
        return hosted
    return "local" if bundled_installed() else "extractive"


def _need(module: str, spec: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise LLMError(f"{spec} needs llama-index's client for it: run {INSTALL_HOSTED}")


def _llamacpp(path: Path, settings: AnswerSettings) -> LLM:
    return LlamaCppChat(
        model_path=str(path),
        threads=settings.threads,
        max_tokens=settings.answer_tokens(local=True),
        warm_prompt=SYSTEM_PROMPT,
    )


def _openai(model: str, key: str, settings: AnswerSettings) -> LLM:
    from llama_index.llms.openai import OpenAI

    # No retries: a failing call falls back to the extractive answer within one timeout.
    return OpenAI(
        model=model,
        api_key=key,
        timeout=settings.timeout,
        max_retries=0,
        temperature=0.0,
        max_tokens=settings.answer_tokens(local=False),
    )


def _openai_compatible(model: str, url: str, key: str, settings: AnswerSettings) -> LLM:
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(
        model=model,
        api_base=url,
        api_key=key or "not-needed",
        is_chat_model=True,
        timeout=settings.timeout,
        max_retries=0,
        temperature=0.0,
        max_tokens=settings.answer_tokens(local=False),
    )


def _ollama(model: str, settings: AnswerSettings) -> LLM:
    from llama_index.llms.ollama import Ollama

    return Ollama(
        model=model,
        base_url=settings.ollama_base_url,
        request_timeout=settings.timeout,
        temperature=0.0,
        additional_kwargs={"num_predict": settings.answer_tokens(local=False)},
    )
