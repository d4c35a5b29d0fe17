"""The embedding registry: a short spec (`minilm`, `openai:MODEL`, ...) -> a llama-index embedding.

The spec picks the model that embeds the store and the questions; the bundled MiniLM also
scores sentences in the answer stage, whatever the store uses (the relevance thresholds are
MiniLM cosines). Hosted clients are imported inside the provider that needs them.

Package `embeddings`: this registry, the bundled MiniLM (`minilm`, made fast once by
`onnx_optimize` with `onnx_graph`), sentence encoding with its cache (`sentences`), the served
clients (`hosted`) and the opt-in EmbeddingGemma (`gemma/`). It may import the values modules and
`sources`; the embedding SDKs are imported only here.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from llama_index.core.base.embeddings.base import BaseEmbedding

from assistant.config import EmbeddingSettings, Settings
from assistant.embeddings import hosted
from assistant.embeddings.gemma import MODEL_ID as GEMMA_ID
from assistant.embeddings.gemma import GemmaEmbedding
from assistant.embeddings.minilm import (
    DIMENSION,
    MAX_TOKENS,
    MODEL_ID,
    MiniLMEmbedding,
    bundled_texts,
    count_tokens,
    default_embedding,
    fast_form,
    fast_model_path,
    load_tokenizer,
    model_inputs,
    model_path,
)
from assistant.embeddings.sentences import SentenceCache, TextEncoder
from assistant.errors import EmbeddingError
from assistant.keys import COMPATIBLE_KEY_ENV, OPENAI_KEY_ENV, describe_failure, hosted_key

__all__ = [
    "DIMENSION",
    "MAX_TOKENS",
    "MODEL_ID",
    "BUNDLED",
    "OFFLINE",
    "VALID_FORMS",
    "EmbeddingChoice",
    "MiniLMEmbedding",
    "SentenceCache",
    "TextEncoder",
    "bundled_texts",
    "count_tokens",
    "default_embedding",
    "fast_form",
    "fast_model_path",
    "load_tokenizer",
    "model_inputs",
    "model_path",
    "resolve",
    "spec_of",
    "store_id",
]

BUNDLED = "minilm"
GEMMA = "embeddinggemma"
VALID_FORMS = (
    BUNDLED,
    GEMMA,
    "openai:MODEL",
    "openai-compatible:MODEL@http://host:port/v1",
    "ollama:MODEL",
    "tei:http://host:port",
)
INSTALL_HOSTED = "pip install -e '.[hosted]'"
_COMPATIBLE = re.compile(r"(?P<model>[^@\s]+)@(?P<url>https?://\S+)")
_URL = re.compile(r"https?://\S+")
# The llama-index client each served kind needs (in the `hosted` extra).
_CLIENTS = {
    "openai": "llama_index.embeddings.openai",
    "openai-compatible": "llama_index.embeddings.openai_like",
    "ollama": "llama_index.embeddings.ollama",
    "tei": "llama_index.embeddings.text_embeddings_inference",
}


@dataclass(frozen=True)
class EmbeddingChoice:
    """A resolved `embedding.model`: the id its stores record and how to build the model."""

    spec: str
    store_id: str
    factory: Callable[[], BaseEmbedding]

    @property
    def bundled(self) -> bool:
        """Whether this is the bundled MiniLM (which then also scores sentences)."""
        return self.spec == BUNDLED

    def build(self) -> BaseEmbedding:
        """Build the embedding model (a served one is not contacted yet)."""
        return self.factory()


# Models that run offline in this process: spec -> (the id their stores record, builder). MiniLM
# stores have always recorded its model id; an opt-in model (e.g. `embeddinggemma`) is one more
# entry (its module loads no model until the builder runs).
OFFLINE: dict[str, tuple[str, Callable[[EmbeddingSettings], BaseEmbedding]]] = {
    BUNDLED: (MODEL_ID, lambda s: default_embedding(s.threads, s.batch_tokens)),
    # Opt-in: built once by `python -m assistant.embeddings.gemma build` (docs/models.md "A stronger offline
    # embedding"); a missing build is one line naming that command.
    GEMMA: (GEMMA_ID, lambda s: GemmaEmbedding(threads=s.threads)),
}


def _parse(spec: str) -> tuple[str, str]:
    """Split a spec into (kind, argument), or say which forms are valid."""
    spec = spec.strip()
    if spec in OFFLINE:
        return spec, ""
    kind, _, arg = spec.partition(":")
    valid = (
        (kind in ("openai", "ollama") and arg and not arg.startswith("//"))
        or (kind == "openai-compatible" and _COMPATIBLE.fullmatch(arg))
        or (kind == "tei" and _URL.fullmatch(arg))
    )
    if not valid:
        forms = list(dict.fromkeys([*OFFLINE, *VALID_FORMS]))
        raise EmbeddingError(f"unknown embedding {spec!r}; use one of: {', '.join(forms)}")
    return kind, arg


def store_id(spec: str) -> str:
    """Return what a store built with `spec` records (MiniLM's model id for `minilm`, else the spec)."""
    kind, _ = _parse(spec)
    return OFFLINE[kind][0] if kind in OFFLINE else spec.strip()


def spec_of(recorded: str) -> str:
    """Return the spec that opens a store which recorded `recorded`."""
    return next((spec for spec, (sid, _) in OFFLINE.items() if sid == recorded), recorded)


def resolve(settings: Settings, env: Mapping[str, str] | None = None) -> EmbeddingChoice:
    """Turn `embedding.model` into a choice, failing early with a line that says what to fix."""
    env = os.environ if env is None else env
    emb = settings.embedding
    spec = emb.model.strip()
    kind, arg = _parse(spec)
    if kind in OFFLINE:
        sid, builder = OFFLINE[kind]
        return EmbeddingChoice(spec, sid, lambda: builder(emb))
    if importlib.util.find_spec(_CLIENTS[kind]) is None:
        raise EmbeddingError(f"embedding {spec} needs llama-index's client for it: run {INSTALL_HOSTED}")
    key = ""
    if kind == "openai":
        key = hosted_key(settings.answer, env, OPENAI_KEY_ENV)
        if not key:
            raise EmbeddingError(
                f"embedding {spec} needs an API key: set {OPENAI_KEY_ENV} or answer.api_key_file"
            )
        build, where = partial(hosted.openai, arg, key, emb.timeout), "the OpenAI API"
    elif kind == "openai-compatible":
        # Never the user's OpenAI key: a third-party server gets only its own.
        key = hosted_key(settings.answer, env, COMPATIBLE_KEY_ENV)
        model, _, url = arg.partition("@")
        where = f"the embedding server at {url}"
        build = partial(hosted.openai_compatible, model, url, key, emb.timeout)
    elif kind == "ollama":
        url = settings.answer.ollama_base_url
        build, where = partial(hosted.ollama, arg, url, emb.timeout), f"the Ollama server at {url}"
    else:
        build, where = partial(hosted.tei, arg.rstrip("/"), emb.timeout), f"the embedding server at {arg}"
    # The answerers' redaction: no key, and nothing that looks like one, in a message.
    redact = partial(describe_failure, secret=key or None)
    return EmbeddingChoice(spec, spec, lambda: hosted.RemoteEmbedding(spec, build(), where, redact))
