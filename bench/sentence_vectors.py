"""Several vectors per abstract: is dense retrieval better over sentence windows than over chunks?

Measured on SciFact (809 train claims, 5,183 abstracts; the store `bench/retrieval.py --sets
scifact` builds). Every abstract's sentences are embedded in windows of W sentences (stride 1) and
a paper scores by its best window (exact search in memory, as an index of windows would return);
that ranking is scored alone and fused with the store's BM25 by llama-index's
`QueryFusionRetriever` (the product's fusion), beside the product's own chunk-vector retrievers.
The ingest cost is the word pieces embedded per paper, against the chunks' (all 254-piece chunks).

    python bench/sentence_vectors.py --windows 1,2,3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.llms import MockLLM
from llama_index.core.retrievers import BaseRetriever, QueryFusionRetriever
from llama_index.core.retrievers.fusion_retriever import FUSION_MODES
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from assistant.config import Settings
from assistant.embeddings import default_embedding, model_inputs
from assistant.evaluate import load_cases, retrieval_scores
from assistant.pipeline import Assistant
from assistant.retrieve.sentences import sentences
from assistant.schema import Paper
from assistant.sources import read_papers
from assistant.store.keyword import KeywordRetriever

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data")) / "bench" / "scifact"
KS = [1, 5, 10]


class WindowRetriever(BaseRetriever):
    """Papers ranked by their best sentence window's cosine to the question (exact search)."""

    def __init__(self, vectors: np.ndarray, owners: list[str], top_k: int) -> None:
        self.vectors, self.owners, self.top_k = vectors, owners, top_k
        super().__init__()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        scores = self.vectors @ np.asarray(query_bundle.embedding, dtype=np.float32)
        best: dict[str, float] = {}
        for i in np.argsort(-scores)[: self.top_k * 20]:
            best.setdefault(self.owners[i], float(scores[i]))
        ranked = list(best.items())[: self.top_k]
        # Chunk 0's id: fusion then merges a paper found here with the same paper found by BM25.
        return [NodeWithScore(node=TextNode(id_=f"{paper}#0", text=""), score=s) for paper, s in ranked]


def windows(paper: Paper, width: int) -> list[str]:
    """Return the title and the runs of `width` consecutive sentences of the abstract."""
    parts = sentences(paper.abstract)
    runs = [" ".join(parts[i : i + width]) for i in range(max(1, len(parts) - width + 1))]
    return ([paper.title] if paper.title else []) + runs


def main() -> int:
    """Embed the windows, rank, and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", default="1,2,3", help="sentences per window, comma-separated")
    parser.add_argument(
        "--store", type=Path, default=Path("/tmp/arxiv-assistant-bench/scifact"), help="bench/retrieval.py's"
    )
    parser.add_argument(
        "--dense-weight", type=float, default=0.3, help="the window ranking's share in fusion"
    )
    args = parser.parse_args()
    # bench/retrieval.py's mark of a finished store: beside it (inside it before the store refused that).
    done = args.store.with_name(f"{args.store.name}.complete")
    if (args.store / "complete").exists():
        (args.store / "complete").rename(done)
    if not done.exists():
        parser.error(f"{args.store} is not a finished store: run `python bench/retrieval.py --sets scifact`")
    model = default_embedding()
    settings = Settings.load(env={}, overrides={"store.path": args.store, "answer.llm": "extractive"})
    bot = Assistant(settings, embed_model=model)
    documents = [p for p in read_papers(SCIFACT / "corpus.kaggle.jsonl.gz") if isinstance(p, Paper)]
    chunk_pieces = 0
    for _, texts, metadatas in bot.store.scan():
        titled = [
            f"{m['title']}\n{t}" if m.get("title") else t for t, m in zip(texts, metadatas, strict=True)
        ]
        chunk_pieces += sum(len(ids) for ids in model_inputs(titled))
    cases = load_cases(SCIFACT / "claims-train.jsonl", print)
    questions = [
        (c.question, c.expected_ids) for conversation in cases for c in conversation if c.expected_ids
    ]
    print(
        f"{len(documents)} papers, {len(questions)} claims; "
        f"chunks: {chunk_pieces / len(documents):.0f} word pieces per paper"
    )
    print("\n| ranking | recall@1 | recall@5 | recall@10 | ndcg@10 | mrr | word pieces embedded per paper |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("dense", "bm25", "hybrid"):
        rows = [
            retrieval_scores(e, [p.arxiv_id for p in bot.retrieve(q, 10, retriever=kind)], KS)
            for q, e in questions
        ]
        _row(f"product {kind}", rows, chunk_pieces / len(documents) if kind != "bm25" else 0)
    assert bot._retrieval is not None  # built by the first retrieve above
    keyword = bot._retrieval.keyword_index()
    for width in [int(w) for w in args.windows.split(",")]:
        owners, texts = [], []
        for paper in documents:
            for window in windows(paper, width):
                owners.append(paper.arxiv_id)
                texts.append(window)
        start = time.perf_counter()
        vectors = model.embed(texts)
        pieces = sum(len(ids) for ids in model_inputs(texts)) / len(documents)
        print(
            f"windows of {width}: {len(texts)} vectors in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
        dense = WindowRetriever(vectors, owners, 30)
        bm25 = KeywordRetriever(bot.store, keyword, 30, None)
        fused = QueryFusionRetriever(
            [dense, bm25],
            llm=MockLLM(),
            mode=FUSION_MODES.DIST_BASED_SCORE,
            similarity_top_k=30,
            num_queries=1,
            use_async=False,
            retriever_weights=[args.dense_weight, 1 - args.dense_weight],
        )
        for name, retriever in ((f"windows of {width}", dense), (f"windows of {width} + bm25", fused)):
            rows = []
            for question, expected in questions:
                bundle = QueryBundle(question, embedding=model.embed([question])[0].tolist())
                ranked = list(
                    dict.fromkeys(h.node.node_id.rpartition("#")[0] for h in retriever.retrieve(bundle))
                )
                rows.append(retrieval_scores(expected, ranked[:10], KS))
            _row(name, rows, pieces)
    return 0


def _row(name: str, rows: list[dict[str, Any]], pieces: float) -> None:
    cells = [
        f"{np.mean([r[m] for r in rows]):.3f}"
        for m in ("recall@1", "recall@5", "recall@10", "ndcg@10", "mrr")
    ]
    print(f"| {name} | " + " | ".join(cells) + f" | {pieces:.0f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
