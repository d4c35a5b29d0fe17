"""Embedding models behind a server, through llama-index's own clients (the `hosted` extra).

Each client is imported inside the function that builds it, so `import assistant` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from assistant.errors import EmbeddingError


class RemoteEmbedding(BaseEmbedding):
    """A served embedding model: unit-length vectors, and any failure said in one line.

    Retrieval scores passages by the dot product of unit vectors, and not every server
    normalises (llama.cpp does not), so vectors are normalised here.
    """

    _inner: Any = PrivateAttr()
    _where: str = PrivateAttr()
    _redact: Callable[[BaseException], str] = PrivateAttr()

    def __init__(
        self, spec: str, inner: BaseEmbedding, where: str, redact: Callable[[BaseException], str]
    ) -> None:
        super().__init__(model_name=spec, embed_batch_size=inner.embed_batch_size)
        self._inner = inner
        self._where = where
        self._redact = redact

    @classmethod
    def class_name(cls) -> str:
        return "RemoteEmbedding"

    def _vectors(self, call: Callable[[], Any], n: int) -> list[list[float]]:
        try:
            vectors = np.asarray(call(), dtype=np.float32)
        except Exception as exc:  # a remote service can fail in any way; say so in one line
            raise EmbeddingError(
                f"embedding with {self.model_name} failed ({self._redact(exc)}); "
                f"check that {self._where} is up and serves that model"
            ) from None
        if vectors.ndim != 2 or len(vectors) != n or not vectors.shape[1]:
            raise EmbeddingError(
                f"{self._where} did not return one vector per text for {self.model_name} "
                f"(shape {vectors.shape}); is it serving a pooled embedding model?"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vectors(lambda: [self._inner.get_query_embedding(query)], 1)[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vectors(lambda: [self._inner.get_text_embedding(text)], 1)[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._vectors(lambda: self._inner.get_text_embedding_batch(texts), len(texts))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


def openai(model: str, key: str, timeout: float) -> BaseEmbedding:
    """OpenAI's embeddings API."""
    from llama_index.embeddings.openai import OpenAIEmbedding

    # `model_name` rather than `model`: the latter only takes the models the package lists.
    return OpenAIEmbedding(model_name=model, api_key=key, timeout=timeout, max_retries=1)


def openai_compatible(model: str, url: str, key: str, timeout: float) -> BaseEmbedding:
    """Any server with OpenAI's `/v1/embeddings` (vLLM, llama.cpp, LM Studio, ...)."""
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    return OpenAILikeEmbedding(
        model_name=model,
        api_base=url,
        api_key=key or "not-needed",
        timeout=timeout,
        max_retries=1,
        embed_batch_size=32,
    )


def ollama(model: str, url: str, timeout: float) -> BaseEmbedding:
    """An Ollama server's embedding model."""
    from llama_index.embeddings.ollama import OllamaEmbedding

    return OllamaEmbedding(model_name=model, base_url=url, client_kwargs={"timeout": timeout})


def tei(url: str, timeout: float) -> BaseEmbedding:
    """A text-embeddings-inference server (it serves one model, named by its URL)."""
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    return TextEmbeddingsInference(model_name="tei", base_url=url, timeout=timeout, embed_batch_size=32)
