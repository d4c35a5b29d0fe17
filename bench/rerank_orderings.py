"""How should `sentences` order the fused candidates? One retrieval pass, every ordering scored from it.

For each question the hybrid candidates and their sentences' MiniLM cosines are kept once; each
ordering (fused, best sentence, best sentence plus a bonus for the fused rank, ...) is then scored
at 5, 10 and 20 candidates. Needs a store `bench/retrieval.py` built (SciFact's by default).

    python bench/rerank_orderings.py --questions 300
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.embeddings import SentenceCache, default_embedding
from assistant.evaluate import load_cases, retrieval_scores
from assistant.pipeline import Assistant
from assistant.retrieve.condense import Turn, condense
from assistant.retrieve.sentences import relevant_sentences

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data")) / "bench" / "scifact"
Ordering = Callable[[dict[str, Any], int, int], float]


def bonus(rank: int, n: int) -> float:
    """1 for the first fused candidate down to 0 for the last (as `rerank.Reranker` gives it)."""
    return 1 - rank / max(n - 1, 1)


def with_bonus(weight: float) -> Ordering:
    """The best sentence plus `weight` x the fused rank bonus (`sentences` uses 0.2)."""
    return lambda c, i, n: c["best"][i] + weight * bonus(i, n)


ORDERINGS: dict[str, Ordering] = {
    "fused (no rerank)": lambda c, i, n: -i,
    "best sentence alone": lambda c, i, n: c["best"][i],
    **{f"best sentence + {w} x fused rank bonus": with_bonus(w) for w in (0.1, 0.2, 0.5)},
    "mean of the best two sentences + 0.2 x bonus": lambda c, i, n: c["top2"][i] + 0.2 * bonus(i, n),
    "0.3 x best sentence + 0.7 x passage cosine": lambda c, i, n: 0.3 * c["best"][i] + 0.7 * c["cos"][i],
}


def main() -> int:
    """Retrieve once per question, then print one Markdown row per ordering and candidate count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("/tmp/arxiv-assistant-bench/scifact"))
    parser.add_argument("--questions-file", type=Path, default=SCIFACT / "claims-train.jsonl")
    parser.add_argument("--questions", type=int, default=300, help="the first N cases")
    parser.add_argument("--retriever", default="hybrid")
    args = parser.parse_args()
    model = default_embedding()
    if (args.store / "complete").exists():  # bench/retrieval.py's mark, kept beside the store now
        (args.store / "complete").rename(args.store.with_name(f"{args.store.name}.complete"))
    settings = Settings.load(env={}, overrides={"store.path": args.store, "answer.llm": "extractive"})
    bot = Assistant(settings, embed_model=model)
    kept: list[dict[str, Any]] = []
    for conversation in load_cases(args.questions_file, print)[: args.questions]:
        for i, case in enumerate(conversation):
            if not case.expected_ids:
                continue
            query = condense(case.question, [Turn(c.question) for c in conversation[:i]], llm=None)
            passages = bot.retrieve(query, 20, retriever=args.retriever)
            scores: dict[int, list[float]] = {}
            for item in relevant_sentences(query, passages, SentenceCache(model), min_score=-1.0):
                scores.setdefault(item.rank, []).append(item.similarity)
            ranked = [sorted(scores.get(r, [-1.0]), reverse=True) for r in range(len(passages))]
            kept.append(
                {
                    "expected": case.expected_ids,
                    "ids": [p.arxiv_id for p in passages],
                    "best": [s[0] for s in ranked],
                    "top2": [float(np.mean(s[:2])) for s in ranked],
                    "cos": [p.score for p in passages],
                }
            )
    print(f"{len(kept)} questions, {args.retriever} candidates; nDCG@10 / recall@5\n")
    print("| ordering | 5 candidates | 10 candidates | 20 candidates |\n|---|---|---|---|")
    for name, order in ORDERINGS.items():
        cells = []
        for cut in (5, 10, 20):
            rows = []
            for c in kept:
                n = min(cut, len(c["ids"]))
                ranked_ids = [c["ids"][i] for i in sorted(range(n), key=lambda i: (-order(c, i, n), i))]
                rows.append(retrieval_scores(c["expected"], ranked_ids, [1, 5, 10]))
            cells.append(
                f"{np.mean([r['ndcg@10'] for r in rows]):.3f} / {np.mean([r['recall@5'] for r in rows]):.3f}"
            )
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
