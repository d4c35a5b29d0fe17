"""EmbeddingGemma-300M as an opt-in offline llama-index embedding: int8 ONNX built once into the cache.

Run time needs onnxruntime and tokenizers only; `python -m assistant.embeddings.gemma build
--accept-gemma-terms` makes the model (see `embeddings/gemma/build.py`).

Package `embeddings.gemma`: the run time (here), the one-time build (`build`, which imports the
run time) and `python -m assistant.embeddings.gemma` (`__main__`, which imports both). It may import
the values modules and the rest of `embeddings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from assistant.cache import cache_dir
from assistant.embeddings.minilm import length_batches, onnx_session
from assistant.errors import AssistantError

MODEL_ID = "embeddinggemma-300m-int8"  # what its stores record
DIMENSION = 768
# The model reads up to 2,048 tokens; abstracts are ~300 and attention costs grow with the square.
MAX_TOKENS = 512
QUERY_PROMPT = "task: search result | query: {q}"
DOCUMENT_PROMPT = "title: {t} | text: {a}"
# The one command that builds it (its own venv for torch, the terms asked once): `make gemma` underneath.
BUILD_COMMAND = "assistant models install embeddinggemma"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST = "build.json"  # written last: its presence means the build finished
# chunking.embed_text's form when the paper's title is known: "title: T\n\nchunk".
TITLE_PREFIX, TITLE_END = "title: ", "\n\n"


def model_dir() -> Path:
    """Return the folder the build writes: $XDG_CACHE_HOME/arxiv-assistant/embeddinggemma."""
    return cache_dir() / "embeddinggemma"


def built(folder: Path) -> Path:
    """Return `folder` if it holds a finished build, else raise one line saying how to build it."""
    if not all((folder / name).is_file() for name in (MANIFEST, MODEL_FILE, TOKENIZER_FILE)):
        raise AssistantError(
            f"EmbeddingGemma is not built in {folder}: run `{BUILD_COMMAND}` once "
            "(downloads 1.15 GB, ~20 min on 2 cores; asks to accept the Gemma Terms of Use)"
        )
    return folder


@lru_cache(maxsize=2)
def load_tokenizer(path: str) -> Any:
    """Load the Gemma tokenizer (<bos> ... <eos>), cut at MAX_TOKENS, unpadded (we batch ourselves)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.enable_truncation(MAX_TOKENS)  # counts the special tokens: <eos> stays last
    tokenizer.no_padding()
    return tokenizer


class GemmaEmbedding(BaseEmbedding):
    """EmbeddingGemma vectors (768, L2-normalised) with the model's query and document prompts."""

    threads: int = Field(default=0, description="onnxruntime threads; 0 = all cores")
    batch_tokens: int = Field(default=1024, description="padded tokens per forward pass (length-sorted)")
    model_dir: str = Field(default="", description="the build's folder; empty = the cache")
    _session: Any = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        # llama-index slices inputs by embed_batch_size before we see them: big slices sort better.
        kwargs.setdefault("embed_batch_size", 256)
        super().__init__(model_name=MODEL_ID, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "GemmaEmbedding"

    def folder(self) -> Path:
        """Return the finished build this instance runs (raising if there is none)."""
        return built(Path(self.model_dir) if self.model_dir else model_dir())

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Return each text's token ids as the model reads them."""
        return [e.ids for e in load_tokenizer(str(self.folder() / TOKENIZER_FILE)).encode_batch(texts)]

    @staticmethod
    def document_text(chunk: str) -> str:
        """Map one of our chunk texts to the model's document prompt ("title: none" without a title)."""
        if chunk.startswith(TITLE_PREFIX) and TITLE_END in chunk:
            title, body = chunk[len(TITLE_PREFIX) :].split(TITLE_END, 1)
            return DOCUMENT_PROMPT.format(t=title.strip() or "none", a=body)
        return DOCUMENT_PROMPT.format(t="none", a=chunk)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed prompted `texts` into a (n, 768) float32 array, batching texts of similar length."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        if self._session is None:
            self._session = onnx_session(str(self.folder() / MODEL_FILE), self.threads)
        encoded = self.tokenize(texts)
        for batch in length_batches([len(e) for e in encoded], self.batch_tokens):
            out[batch] = self._forward([encoded[i] for i in batch])
        return out

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)  # <pad> is 0
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        # The graph pools, applies both Dense layers and normalises (build.sentence_encoder).
        (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
        return np.asarray(vectors, dtype=np.float32)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.embed([QUERY_PROMPT.format(q=query)])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed([self.document_text(text)])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed([self.document_text(t) for t in texts]).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
