"""How the keyword index scores a term in a chunk: BM25's parameters, one index folder per choice."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistant.config import RetrievalSettings

# What every keyword index was built with before BM25's parameters were settings (bm25s' defaults):
# a manifest that names no parameters was scored with these.
BM25S_DEFAULTS = "lucene-k1_1.5-b_0.75"
# The bm25s variants whose scores are a term's idf times a part that is zero where the term is absent:
# the keyword index rescales each segment's idf to the whole index's (`segments.Segment.scored`), which
# bm25l and bm25+ (a score for absent terms too) would not survive.
METHODS = ("lucene", "robertson", "atire")


@dataclass(frozen=True)
class BM25Params:
    """BM25's term-frequency saturation `k1`, length normalisation `b` and idf/tf variant (bm25s names)."""

    # The defaults of `[retrieval]` (chosen on SciFact's train claims and SPAR, docs/measured.md
    # "Retrieval levers"); tests/test_retrieval.py checks that the settings' defaults are these.
    k1: float = 1.2
    b: float = 0.4
    method: str = "lucene"

    @classmethod
    def of(cls, retrieval: RetrievalSettings) -> BM25Params:
        """Return the parameters the retrieval settings ask for."""
        return cls(retrieval.bm25_k1, retrieval.bm25_b, retrieval.bm25_method)

    def label(self) -> str:
        """Name the choice, as the index's manifest records it: `lucene-k1_1.2-b_0.4`."""
        return f"{self.method}-k1_{self.k1:g}-b_{self.b:g}"

    def folder(self, base: str) -> str:
        """Name the index folder: `base` for the defaults, else one per choice (`base.LABEL`).

        Switching parameters builds a new index beside the default one (once) rather than over it, so
        processes configured either way never read an index scored for the other.
        """
        return base if self == BM25Params() else f"{base}.{self.label()}"

    def idf(self, n_docs: int, df: int) -> float:
        """Return the inverse document frequency bm25s computes for this variant."""
        if self.method == "atire":
            return math.log(n_docs / df)
        if self.method == "robertson":  # bm25s clamps it at 0 (never negative)
            return math.log(max(1.0, (n_docs - df + 0.5) / (df + 0.5)))
        return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
