"""EmbeddingGemma (opt-in, int8 ONNX) against the bundled MiniLM on retrieval sets nobody on the team wrote.

One embedding per run, so the peak RSS printed is that model's. Stores are built once (default chunking,
titles included, as the product indexes) under /tmp/arxiv-assistant-bench/gemma-SET-EMBEDDING and reused;
the ingest line is printed only when a store is built. Each row is the product's Retrieval (dense, bm25,
hybrid at several dense weights) through `Assistant.retrieve`, scored with `assistant eval`'s metrics.

    python bench/gemma.py scifact --embedding minilm    # 809 SciFact train claims, 5,183 abstracts
    python bench/gemma.py scifact --embedding gemma     # needs `python -m assistant.embeddings.gemma build`
    python bench/gemma.py spar --embedding gemma        # 50 SPAR requests, 525 papers + 20k distractors
    python bench/gemma.py bundled --embedding gemma     # seed_questions.jsonl, bundled 10 + 20k distractors
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.evaluate import load_cases, retrieval_scores
from assistant.ingest import BATCH_PAPERS, Ingester, IngestReport, bundled_corpus
from assistant.pipeline import Assistant
from assistant.schema import Paper
from assistant.sources import read_papers
from assistant.store import Store, keyword

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data"))
DISTRACTORS = 20_000
# (questions, corpus files, papers taken from the 75k file as distractors)
SETS: dict[str, tuple[Path, list[Path], int]] = {
    "scifact": (
        DATA / "bench" / "scifact" / "claims-train.jsonl",
        [DATA / "bench" / "scifact" / "corpus.kaggle.jsonl.gz"],
        0,
    ),
    "spar": (
        DATA / "bench" / "spar" / "questions.jsonl",
        [DATA / "bench" / "spar" / "corpus.kaggle.jsonl"],
        DISTRACTORS,
    ),
    "bundled": (ROOT / "assistant" / "data" / "seed_questions.jsonl", [bundled_corpus()], DISTRACTORS),
}
KS = [1, 5, 10]
COLUMNS = [
    "ndcg@10",
    "recall@1",
    "recall@5",
    "recall@10",
    "hit@1",
    "hit@5",
    "mrr",
    "p50_ms",
    "p95_ms",
    "cpu_ms",
]


def embedding(name: str, threads: int) -> Any:
    """Return the named embedding model ("minilm" or "gemma")."""
    if name == "gemma":
        from assistant.embeddings.gemma import GemmaEmbedding

        return GemmaEmbedding(threads=threads)
    from assistant.embeddings import default_embedding

    return default_embedding(threads)


def corpus(
    files: list[Path], distractors: int, cited: set[str] | None = None, size: int = 0
) -> Iterator[Paper]:
    """Yield the set's papers, then the first `distractors` papers of the 75k file not already seen.

    With `size`, a smaller corpus of the set: the papers in `cited`, then others in file order up to `size`.
    """
    seen: set[str] = set()
    papers = (p for path in files for p in read_papers(path) if isinstance(p, Paper))
    if size:
        every = list(papers)
        chosen = [p for p in every if p.arxiv_id in (cited or set())]
        chosen += [p for p in every if p.arxiv_id not in (cited or set())][: max(0, size - len(chosen))]
        papers = iter(chosen)
    for paper in papers:
        seen.add(paper.arxiv_id)
        yield paper
    if distractors:
        extra = (p for p in read_papers(DATA / "arxiv-cs-75k.kaggle.jsonl.gz") if isinstance(p, Paper))
        yield from itertools.islice((p for p in extra if p.arxiv_id not in seen), distractors)


def open_bot(set_name: str, name: str, threads: int, stores: Path, cited: set[str], size: int) -> Assistant:
    """Return an assistant over the set's store for this embedding, ingesting it first if needed."""
    _, files, distractors = SETS[set_name]
    folder = stores / (f"gemma-{set_name}-{name}" + (f"-{size}" if size else ""))
    settings = Settings.load(env={}, overrides={"store.path": folder})
    embed = embedding(name, threads)
    store = Store.from_settings(settings.store, embed.model_name, create=True)
    papers = list(corpus(files, distractors, cited, size))
    if store.paper_count() < len(papers):
        # Unchanged papers are skipped: a run stopped midway resumes where it was.
        ingester, report = Ingester(store, embed, settings.chunking), IngestReport()
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(papers), BATCH_PAPERS):
            ingester.write(papers[i : i + BATCH_PAPERS], report)
            rate = (report.added + report.updated) / (time.perf_counter() - start)
            done = min(i + BATCH_PAPERS, len(papers))
            print(f"\r{done} / {len(papers)} papers, {rate:.2f}/s", end="", file=sys.stderr)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        keyword.load_or_build(store)
        embedded = report.added + report.updated
        # CPU time (all threads) is what a loaded machine does not distort much: read that there.
        print(
            f"\ningest {name}: {embedded} papers embedded ({report.unchanged} already stored), "
            f"{store.count()} chunks in store, {seconds:.0f} s = {embedded / seconds:.2f} papers/s; "
            f"{cpu:.0f} CPU s = {embedded / cpu:.2f} papers per CPU second"
        )
    return Assistant(settings, embed_model=embed, store=store)


def score(bot: Assistant, cases: list[Any], kind: str) -> dict[str, float]:
    """Return the mean metrics and latency of one retriever over the answerable cases."""
    bot.retrieve("warm up the caches", top_k=10, retriever=kind)
    rows, times, cpu = [], [], time.process_time()
    for case in cases:
        start = time.perf_counter()
        passages = bot.retrieve(case.question, top_k=10, retriever=kind)
        times.append((time.perf_counter() - start) * 1000)
        rows.append(retrieval_scores(case.expected_ids, [p.arxiv_id for p in passages], KS))
    means = {name: statistics.fmean(r[name] for r in rows) for name in rows[0]}
    ordered = sorted(times)
    return means | {
        "p50_ms": statistics.median(times),
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))],
        "cpu_ms": (time.process_time() - cpu) * 1000 / len(cases),
    }


def main() -> int:
    """Build (or reuse) the store, print one Markdown row per retriever, then peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=sorted(SETS))
    parser.add_argument("--embedding", choices=("minilm", "gemma"), default="gemma")
    parser.add_argument(
        "--dense-weight", default="0.3,0.5,0.7", help="hybrid's dense shares, comma-separated"
    )
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0 = all cores)")
    parser.add_argument("--stores", type=Path, default=Path("/tmp/arxiv-assistant-bench"))
    parser.add_argument("--questions", type=int, default=0, help="the set's first N questions (0: all)")
    parser.add_argument(
        "--papers",
        type=int,
        default=0,
        help="a smaller corpus: the papers the questions cite, then others (0: all)",
    )
    args = parser.parse_args()
    questions = SETS[args.set][0]
    cases = [c for conv in load_cases(questions, print) for c in conv if c.expected_ids]
    cases = cases[: args.questions or None]
    cited = {i for c in cases for i in c.expected_ids}
    bot = open_bot(args.set, args.embedding, args.threads, args.stores, cited, args.papers)
    print(f"\n### {args.set}: {len(cases)} questions, {bot.store.paper_count()} papers, {args.embedding}\n")
    print("| retriever | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    variants = [("dense", None), ("bm25", None)]
    variants += [("hybrid", float(w)) for w in args.dense_weight.split(",") if w]
    for kind, weight in variants:
        if weight is not None:
            bot.settings.retrieval.dense_weight = weight
            bot._retrieval = None  # rebuilt with the new weight on next use
        row = score(bot, cases, kind)
        name = f"{args.embedding} {kind}" + (f" (dense {weight:g})" if weight is not None else "")
        print(
            f"| {name} | "
            + " | ".join(f"{row[c]:.3f}" if "ms" not in c else f"{row[c]:.1f}" for c in COLUMNS)
            + " |"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
