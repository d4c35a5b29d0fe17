"""Sentence vectors shared within one question: the rerank stage and the answer stage embed each once."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from assistant.embeddings.minilm import DIMENSION


class TextEncoder(Protocol):
    """What scores sentences: texts in, L2-normalised vectors out (the bundled MiniLM, or a cache of it)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed `texts` into an (n, dimension) array of unit vectors."""
        ...


class SentenceCache:
    """A per-question memo of the sentence model: a text embedded once is never embedded again.

    Build one per question and hand it to the rerank stage and then to the answer stage
    (`extractive.relevant_sentences` takes it where it takes the model).
    """

    def __init__(self, model: TextEncoder) -> None:
        self.model = model
        self._vectors: dict[str, np.ndarray] = {}
        self.embedded = 0  # texts the model was asked to embed, for tests and benchmarks

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed `texts`, running the model only on those not seen before."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            self._vectors.update(zip(missing, self.model.embed(missing), strict=True))
            self.embedded += len(missing)
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])
