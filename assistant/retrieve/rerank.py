"""The rerank stage: re-order the fused candidates before the answer stage (`retrieval.rerank`).

- `none`: the fused order;
- `sentences`: by each paper's best sentence, scored with the bundled MiniLM through the
  question's `SentenceCache`, so the answer stage re-uses those vectors instead of embedding again;
- `llm`: llama-index's `LLMRerank` with the configured answerer;
- `tei:URL`: a cross-encoder served by text-embeddings-inference (llama-index's client).
A reranker that fails (a server down, a reply it cannot read) leaves the fused order, with one line
on stderr: a question should not fail for want of a better order.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from assistant.embeddings import TextEncoder
from assistant.errors import ConfigError
from assistant.retrieve.sentences import relevant_sentences
from assistant.schema import Passage

if TYPE_CHECKING:
    from assistant.llms import Backend

INSTALL_HOSTED = "pip install -e '.[hosted]'"
TEI_CLIENT = "llama_index.postprocessor.tei_rerank"
# The best sentence alone lost to the fused order on SciFact (nDCG@10 0.673 vs 0.696, 300 claims,
# 10 hybrid candidates): the fused rank carries BM25's exact terms, which sentence cosines miss.
# A bonus of 0.2 (first candidate) down to 0 (last) scored best of 0-0.5 there (0.701; docs/measured.md).
FUSED_WEIGHT = 0.2


def best_sentences(query: str, passages: Sequence[Passage], encoder: TextEncoder) -> list[float]:
    """Return each passage's best sentence cosine to `query` (-1 for a passage without sentences)."""
    best = [-1.0] * len(passages)
    for item in relevant_sentences(query, passages, encoder, min_score=-1.0):
        best[item.rank] = max(best[item.rank], item.similarity)
    return best


class Reranker:
    """One configured rerank stage; `rerank` re-orders candidates and keeps the best `top_k`."""

    def __init__(self, spec: str, *, backend: Backend | None = None, timeout: float = 60.0) -> None:
        self.spec = spec
        self._backend = backend
        self._timeout = timeout
        if spec == "llm" and (backend is None or backend.extractive):
            raise ConfigError(
                "retrieval.rerank = llm needs a generative answerer; choose one with --llm "
                "(or answer.llm), or use --rerank sentences"
            )
        if spec.startswith("tei:") and importlib.util.find_spec(TEI_CLIENT) is None:
            raise ConfigError(f"retrieval.rerank = {spec} needs its llama-index client: run {INSTALL_HOSTED}")

    @property
    def active(self) -> bool:
        """Whether this stage changes anything (`none` does not)."""
        return self.spec != "none"

    def rerank(
        self, query: str, passages: Sequence[Passage], top_k: int, sentences: TextEncoder
    ) -> list[Passage]:
        """Return the best `top_k` of `passages` for `query`, each with its `rerank_score` in metadata."""
        if not self.active or not passages:
            return list(passages[:top_k])
        try:
            scores = self._scores(query, passages, sentences)
        except Exception as exc:  # a served reranker or model can fail in any way; keep the fused order
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            print(
                f"assistant: warning: reranking with {self.spec} failed ({type(exc).__name__}: {reason}); "
                "kept the retrieval order",
                file=sys.stderr,
            )
            return list(passages[:top_k])
        order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
        return [
            replace(passages[i], metadata={**passages[i].metadata, "rerank_score": round(scores[i], 4)})
            for i in order[:top_k]
        ]

    def _scores(self, query: str, passages: Sequence[Passage], sentences: TextEncoder) -> list[float]:
        if self.spec == "sentences":
            n = len(passages)
            # The fused order as a small bonus (1 for the first candidate down to 0 for the last).
            return [
                best + FUSED_WEIGHT * (1 - rank / max(n - 1, 1))
                for rank, best in enumerate(best_sentences(query, passages, sentences))
            ]
        nodes = [NodeWithScore(node=TextNode(id_=str(i), text=_text(p))) for i, p in enumerate(passages)]
        ranked = self._postprocessor(len(passages)).postprocess_nodes(nodes, QueryBundle(query))
        scores = [float("-inf")] * len(passages)
        for position, hit in enumerate(ranked):
            # LLMRerank returns only the papers it chose: they go first, the rest keep the fused order.
            scores[int(hit.node.node_id)] = len(passages) - position
        return scores

    def _postprocessor(self, n: int) -> Any:
        if self.spec == "llm":
            from llama_index.core.postprocessor import LLMRerank

            assert self._backend is not None  # checked in __init__
            return LLMRerank(llm=self._backend.llm(), top_n=n, choice_batch_size=n)
        from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

        url = self.spec.removeprefix("tei:").rstrip("/")
        return TextEmbeddingInference(base_url=url, top_n=n, timeout=self._timeout)


def _text(passage: Passage) -> str:
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text
