"""Retrieval benchmark: recall@1/5/10, MRR and warm latency of dense, BM25 and hybrid retrieval.

Queries nobody hand-tunes, one per sampled paper, with titles kept OUT of the indexed text
(`chunking.include_title = false`):
- `titles`: the paper's real title;
- `generated`: a question the bundled local model wrote from the paper's abstract alone, with one
  fixed prompt (cached next to the stores, so a rerun asks the model nothing).
The papers are sampled once from the smallest size, so every size answers the same questions and
only the distractors grow. Also prints the relevance-threshold calibration: the best sentence's
cosine for on-topic queries versus off-topic questions, and the shares the threshold keeps and
declines (`--min-score-growth 0`: with the thresholds fixed instead of growing with the store).

    python bench/retrieval.py --n 20000 --n 75000          # default data: ../shared/data
    python bench/retrieval.py --queries generated --n 20000 --n 75000
    python bench/retrieval.py --data PATH.jsonl.gz --n 5000 --questions 200
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

from assistant import keyword
from assistant.config import Settings
from assistant.embeddings import default_embedding
from assistant.extractive import relevant_sentences
from assistant.ingest import BATCH_PAPERS, Ingester, IngestReport
from assistant.pipeline import Assistant, open_store
from assistant.schema import Paper
from assistant.sources import read_papers

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (
    Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data")) / "arxiv-cs-75k.kaggle.jsonl.gz"
)
KINDS = ("dense", "bm25", "hybrid")
# Questions no arXiv CS abstract answers: what the threshold must decline.
OFF_TOPIC = [
    "What is the capital of Australia?",
    "How do I bake sourdough bread?",
    "Who won the 1998 football world cup?",
    "What is the boiling point of water at sea level?",
    "How many legs does a spider have?",
    "When was the Eiffel Tower built?",
    "What is a good recipe for lasagna?",
    "Who wrote Pride and Prejudice?",
    "How tall is Mount Everest?",
    "What is the best time of year to plant tulips?",
    "How do I change a flat tyre on a bicycle?",
    "What currency is used in Japan?",
    "Which planet has the most moons?",
    "How long should I boil an egg?",
    "What is the plot of Hamlet?",
    "Who painted the Mona Lisa?",
    "What are the rules of cricket?",
    "How do I remove a red wine stain from a carpet?",
    "What is the population of Brazil?",
    "Which wine goes well with fish?",
]
# More of them, written after the threshold's growth with store size was chosen on OFF_TOPIC:
# a check that it was not fitted to those 20.
HELD_OUT = [
    "How do I grow tomatoes on a balcony?",
    "What year did the Berlin Wall fall?",
    "Who is the lead singer of Queen?",
    "How much sleep does a toddler need?",
    "What is the tallest building in Dubai?",
    "How do I knit a scarf?",
    "What is the best way to cook rice?",
    "Who discovered penicillin?",
    "What language is spoken in Brazil?",
    "How do I train my dog to sit?",
    "What is the recipe for pancakes?",
    "When did the Titanic sink?",
    "How many players are on a basketball team?",
    "What is the capital of Canada?",
    "How do I descale a kettle?",
    "Who composed the Four Seasons?",
    "What should I pack for a beach holiday?",
    "How old is the Great Wall of China?",
    "What is the best fertilizer for roses?",
    "Where is the Louvre museum?",
]


# The one prompt the `generated` questions come from; changing it invalidates the cache (its hash).
QUESTION_PROMPT = (
    "Abstract of a research paper:\n\n{abstract}\n\n"
    "Write one question that this abstract answers, the way a researcher looking for this work "
    "would ask it. Reply with the question only."
)


def papers(data: Path, n: int) -> list[Paper]:
    """Return the first `n` readable papers of `data`."""
    return [p for p in itertools.islice(read_papers(data), n) if isinstance(p, Paper)]


def build_store(data: Path, corpus: list[Paper], n: int, folder: Path, growth: float | None) -> Assistant:
    """Ingest `corpus` without titles (reused if already built) and return an assistant."""
    overrides = {
        "store.path": folder / f"{data.name}-{n}-notitle",
        "chunking.include_title": False,
        "retrieval.min_score_growth": growth,  # None: the default
    }
    settings = Settings.load(env={}, overrides=overrides)
    embed = default_embedding()
    store = open_store(settings, for_writing=True)
    if store.paper_count() < len(corpus):
        start = time.perf_counter()
        ingester, report = Ingester(store, embed, settings.chunking), IngestReport()
        for i in range(0, len(corpus), BATCH_PAPERS):
            ingester.write(corpus[i : i + BATCH_PAPERS], report)
            print(f"\r{i + BATCH_PAPERS} / {len(corpus)} papers", end="", file=sys.stderr)
        keyword.load_or_build(store)
        print(
            f"\nbuilt {store.path}: {report.summary()} in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )
    return Assistant(settings, embed_model=embed, store=store)


def generated_questions(sample: list[Paper], cache: Path) -> list[tuple[str, str]]:
    """Return (question, arXiv id) pairs the bundled local model wrote from each abstract (cached)."""
    from llama_index.core.base.llms.types import ChatMessage, MessageRole

    from assistant.llms.llamacpp import LlamaCppChat, bundled_model_path

    written: dict[str, str] = {}
    if cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                written[row["arxiv_id"]] = row["question"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a run killed mid-write leaves a partial line: that paper is asked again
        lines = (json.dumps({"arxiv_id": k, "question": v}) + "\n" for k, v in written.items())
        cache.write_text("".join(lines), encoding="utf-8")
    missing = [p for p in sample if p.arxiv_id not in written]
    if missing:
        llm = LlamaCppChat(model_path=str(bundled_model_path()), threads=os.cpu_count() or 1, max_tokens=64)
        start = time.perf_counter()
        with cache.open("a", encoding="utf-8") as out:
            for i, paper in enumerate(missing, 1):
                prompt = QUESTION_PROMPT.format(abstract=paper.abstract)
                reply = llm.chat([ChatMessage(role=MessageRole.USER, content=prompt)]).message.content or ""
                # The first line, unquoted: small models sometimes add a second question or quotes.
                question = (reply.strip().splitlines() or [""])[0].strip().strip('"')
                written[paper.arxiv_id] = question
                out.write(json.dumps({"arxiv_id": paper.arxiv_id, "question": question}) + "\n")
                out.flush()
                rate = i / (time.perf_counter() - start)
                print(f"\rwrote {i} / {len(missing)} questions, {rate:.2f}/s", end="", file=sys.stderr)
        print(file=sys.stderr)
    # A paper the model wrote no question for is left out rather than asked as an empty query.
    return [(written[p.arxiv_id], p.arxiv_id) for p in sample if written[p.arxiv_id]]


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def relevance(bot: Assistant, question: str, kind: str) -> float:
    """Return what the relevance threshold is compared with: the best sentence's cosine to the question."""
    passages = bot.retrieve(question, retriever=kind)
    scored = relevant_sentences(question, passages, bot.embed_model, min_score=-1.0)
    return max((s.similarity for s in scored), default=-1.0)


def evaluate(bot: Assistant, questions: list[tuple[str, str]], kind: str) -> dict[str, float]:
    """Run every (query, arXiv id) through one retriever; return recall@k, MRR, latency and best cosines."""
    bot.retrieve("warm up the caches", top_k=10, retriever=kind)
    ranks, times, best = [], [], []
    for query, arxiv_id in questions:
        start = time.perf_counter()
        found = bot.retrieve(query, top_k=10, retriever=kind)
        times.append((time.perf_counter() - start) * 1000)
        ids = [p.arxiv_id for p in found]
        ranks.append(ids.index(arxiv_id) + 1 if arxiv_id in ids else None)
        best.append(relevance(bot, query, kind))
    n, threshold = len(questions), bot.min_score(kind)
    return {
        "recall@1": sum(r == 1 for r in ranks) / n,
        "recall@5": sum(r is not None and r <= 5 for r in ranks) / n,
        "recall@10": sum(r is not None for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
        "p50_ms": statistics.median(times),
        "p95_ms": percentile(times, 95),
        "on_topic_p5_relevance": percentile(best, 5),
        "on_topic_kept": sum(b >= threshold for b in best) / n,
    }


def off_topic(bot: Assistant, kind: str) -> dict[str, float]:
    """Return the highest relevance over the off-topic questions, and the shares the threshold declines."""
    scores = [relevance(bot, q, kind) for q in OFF_TOPIC]
    held_out = [relevance(bot, q, kind) for q in HELD_OUT]
    threshold = bot.min_score(kind)
    return {
        "off_topic_max_relevance": max(scores),
        "off_topic_declined": sum(s < threshold for s in scores) / len(scores),
        "held_out_declined": sum(s < threshold for s in held_out) / len(held_out),
    }


def main() -> int:
    """Parse flags, build stores, print one Markdown table per corpus size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Kaggle JSON lines (.gz)")
    parser.add_argument("--n", type=int, action="append", help="papers to index (repeatable; default 20000)")
    parser.add_argument("--questions", type=int, default=300, help="papers sampled as queries")
    parser.add_argument(
        "--queries", choices=("titles", "generated"), default="titles", help="what each sampled paper asks"
    )
    parser.add_argument(
        "--stores", type=Path, default=Path("/tmp/arxiv-assistant-bench"), help="where stores are kept"
    )
    parser.add_argument("--fusion", default="dist_based_score", help="hybrid fusion mode(s), comma-separated")
    parser.add_argument(
        "--dense-weight", default="", help="hybrid's dense share(s), comma-separated (default: the setting)"
    )
    parser.add_argument(
        "--min-score-growth",
        type=float,
        help="relevance threshold's growth with the store's size (default: the setting; 0: fixed)",
    )
    args = parser.parse_args()
    sizes = args.n or [20000]
    smallest = papers(args.data, min(sizes))
    titled = [p for p in smallest if p.title]
    sample = random.Random(0).sample(titled, min(args.questions, len(titled)))
    if args.queries == "titles":
        questions = [(p.title or "", p.arxiv_id) for p in sample]
    else:
        args.stores.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(QUESTION_PROMPT.encode()).hexdigest()[:8]
        questions = generated_questions(sample, args.stores / f"questions-{args.data.name}-{tag}.jsonl")
    for n in sizes:
        corpus = smallest if n == min(sizes) else papers(args.data, n)
        bot = build_store(args.data, corpus, n, args.stores, args.min_score_growth)
        print(
            f"\n### {bot.store.paper_count()} papers, {len(questions)} queries: {args.queries}"
            " (titles not indexed)\n"
        )
        columns = ["recall@1", "recall@5", "recall@10", "mrr", "p50_ms", "p95_ms"]
        columns += ["on_topic_p5_relevance", "on_topic_kept"]
        extra = ["off_topic_max_relevance", "off_topic_declined", "held_out_declined"]
        print("| retriever | " + " | ".join(columns + extra) + " |")
        print("|---" * (len(columns) + len(extra) + 1) + "|")
        for kind in KINDS:
            weights = [float(w) for w in args.dense_weight.split(",") if w] or [
                bot.settings.retrieval.dense_weight
            ]
            variants = itertools.product(args.fusion.split(","), weights) if kind == "hybrid" else [("", 0.0)]
            for fusion, weight in variants:
                if fusion:
                    bot.settings.retrieval.fusion = fusion  # type: ignore[assignment]
                    bot.settings.retrieval.dense_weight = weight
                    bot._retrieval = None  # rebuilt with the new fusion settings on next use
                row = evaluate(bot, questions, kind) | off_topic(bot, kind)
                name = f"hybrid ({fusion}, dense {weight:g})" if fusion else kind
                print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in columns + extra) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
