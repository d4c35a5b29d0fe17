"""Retrieval benchmark: recall@1/5/10, nDCG@10, MRR and warm latency per configuration
(embedding x retriever x rerank), in one run, on questions nobody on the team wrote.

Sets (`--sets`, comma-separated; default all five):
- `scifact`: SciFact's 809 train claims over its 5,183 abstracts (`$ARXIV_DATA/bench/scifact`);
- `spar`: 50 real literature-search requests (SPARBench) over their 525 papers plus the first
  20,000 papers of the 75k file as distractors;
- `bundled`: `assistant/data/seed_questions.jsonl` (paraphrases, follow-ups, unanswerable) over the
  10 bundled abstracts plus the same 20,000 papers;
- `titles`: the real title of each of 300 papers sampled from the first `--n` papers, titles NOT
  indexed (`chunking.include_title = false`), at each `--n` (default 20000);
- `generated`: a question the bundled local model wrote from each sampled abstract alone (one fixed
  prompt; cached beside the stores, so a rerun asks the model nothing).
The rows with `minilm`, no rerank, are today's baseline, measured in the same run. For `titles`
and `generated` it also prints the relevance-threshold checks: the share of queries whose passages
clear it (`answerable_kept`) and the shares of off-topic questions it declines (20 it was chosen on,
20 held out); `--min-score-growth 0` fixes the thresholds instead of growing them with the store.
Stores are built once (any `--embedding` spec) and kept under `--stores`.

    python bench/retrieval.py          # all sets; minilm; dense,bm25,hybrid x none,sentences
    python bench/retrieval.py --sets scifact,spar,bundled --rerank none,sentences --candidates 10,20
    python bench/retrieval.py --sets titles --n 20000 --n 75000 --retriever hybrid
    python bench/retrieval.py --sets scifact --embedding minilm,embeddinggemma
    python bench/retrieval.py --sets scifact,spar --retriever hybrid --rerank none \
        --lever strip_scaffolding=phrases --lever "bm25_k1=0.9|1.2,bm25_b=0.4|0.75"

`--lever NAME=VALUE[,NAME=VALUE...]` (repeatable; `|` lists values, a row per combination) scores
`retrieval.NAME` settings changed alone against a baseline row, in one table per set: each row's
figures and their gain over the baseline. `--set NAME=VALUE,...` changes the baseline (every row).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.embeddings import resolve
from assistant.evaluate import Case, evaluate_retrieval, load_cases
from assistant.ingest import BATCH_PAPERS, Ingester, IngestReport, bundled_corpus
from assistant.pipeline import Assistant, open_store
from assistant.schema import Paper
from assistant.sources import read_papers
from assistant.store import keyword

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data"))
BIG = DATA / "arxiv-cs-75k.kaggle.jsonl.gz"  # the papers: --data
SETS = ("scifact", "spar", "bundled", "titles", "generated")
DISTRACTORS = 20_000
KS = [1, 5, 10]
COLUMNS = ["recall@1", "recall@5", "recall@10", "hit@5", "ndcg@10", "mrr", "p50_ms", "p95_ms"]
THRESHOLD_COLUMNS = ["answerable_kept", "off_topic_declined", "held_out_declined"]
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


def complete_marker(store: Path) -> Path:
    """The file beside a store that says it was built whole (not inside: the store holds only its own)."""
    return store.with_name(f"{store.name}.complete")


class _Quiet:
    """A progress bar that shows nothing (evaluate_retrieval reports progress through one)."""

    def update(self, n: int) -> None:
        pass


def papers(path: Path, n: int | None = None) -> list[Paper]:
    """Return the first `n` readable papers of `path` (all without `n`)."""
    found = read_papers(path)
    return [p for p in (itertools.islice(found, n) if n else found) if isinstance(p, Paper)]


def slug(spec: str) -> str:
    """Name a store folder after an embedding spec (the default keeps the stores' old names)."""
    return "" if spec == "minilm" else "-" + re.sub(r"[^A-Za-z0-9.]+", "_", spec).strip("_")


class Stores:
    """The benchmark's stores under one folder: built once per embedding, reused afterwards."""

    def __init__(self, folder: Path, growth: float | None, candidates: int | None) -> None:
        self.folder = folder
        self.growth = growth
        self.candidates = candidates
        self._models: dict[str, Any] = {}

    def settings(
        self,
        path: Path,
        spec: str,
        *,
        titles: bool = True,
        rerank: str = "none",
        retrieval: dict[str, str] | None = None,
    ) -> Settings:
        """Settings for a store at `path` embedded by `spec` (extractive: nothing answers here).

        `retrieval`: more `retrieval.*` settings (a lever), by name.
        """
        overrides: dict[str, Any] = {f"retrieval.{k}": v for k, v in (retrieval or {}).items()}
        overrides |= {
            "store.path": path,
            "embedding.model": spec,
            "chunking.include_title": titles,
            "retrieval.rerank": rerank,
            "retrieval.rerank_candidates": self.candidates,
            "retrieval.min_score_growth": self.growth,  # None: the defaults
            "answer.llm": "extractive",
        }
        return Settings.load(env={}, overrides=overrides)

    def model(self, spec: str) -> Any:
        """Return the embedding model of `spec`, loaded once."""
        if spec not in self._models:
            self._models[spec] = resolve(self.settings(self.folder, spec)).build()
        return self._models[spec]

    def build(
        self,
        name: str,
        spec: str,
        corpus: Callable[[], list[Paper]],
        *,
        titles: bool = True,
        base: tuple[str, Callable[[], list[Paper]]] | None = None,
    ) -> Path:
        """Return the store `name` for `spec`: `corpus()` ingested (into a copy of `base`, if given).

        A store is reused once complete; the distractor stores share one embedded base.
        """
        path = self.folder / f"{name}{slug(spec)}"
        marker = complete_marker(path)
        if (path / "complete").exists():  # where it was kept before the store refused foreign files
            (path / "complete").rename(marker)
        if marker.exists():
            return path
        settings = self.settings(path, spec, titles=titles)
        if base is not None and not path.exists():
            shutil.copytree(self.build(base[0], spec, base[1]), path)
        store = open_store(settings, for_writing=True)
        # One record per paper, the last one (as `assistant ingest` keeps it): SPAR's corpus repeats some.
        todo = list({paper.arxiv_id: paper for paper in corpus()}.values())
        start = time.perf_counter()
        ingester, report = Ingester(store, self.model(spec), settings.chunking), IngestReport()
        for i in range(0, len(todo), BATCH_PAPERS):
            ingester.write(todo[i : i + BATCH_PAPERS], report)
            done = min(i + BATCH_PAPERS, len(todo))
            print(f"\r{path.name}: {done} / {len(todo)} papers", end="", file=sys.stderr)
        keyword.load_or_build(store)
        marker.touch()
        print(f"\nbuilt {path}: {report.summary()} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return path

    def assistant(
        self,
        path: Path,
        spec: str,
        rerank: str,
        *,
        titles: bool = True,
        retrieval: dict[str, str] | None = None,
    ) -> Assistant:
        """Return an assistant over the store at `path` with this rerank stage (and `retrieval` settings)."""
        settings = self.settings(path, spec, titles=titles, rerank=rerank, retrieval=retrieval)
        sentence_model = self.model("minilm")
        return Assistant(settings, embed_model=self.model(spec), sentence_model=sentence_model)


def jsonl_set(name: str, stores: Stores, spec: str, big: Path, n: int) -> tuple[Path, list[list[Case]]]:
    """Return the store and the questions of `scifact`, `spar` or `bundled` (built if needed).

    `spar` and `bundled` get the first `n` papers of `big` as distractors.
    """
    bench = DATA / "bench"
    base = (f"first{n}", lambda: papers(big, n))

    def warn(message: str) -> None:
        print(message, file=sys.stderr)

    if name == "scifact":
        corpus = bench / "scifact" / "corpus.kaggle.jsonl.gz"
        path = stores.build("scifact", spec, lambda: papers(corpus))
        return path, load_cases(bench / "scifact" / "claims-train.jsonl", warn)
    if name == "spar":
        corpus = bench / "spar" / "corpus.kaggle.jsonl"
        path = stores.build(f"spar-{n}", spec, lambda: papers(corpus), base=base)
        return path, load_cases(bench / "spar" / "questions.jsonl", warn)
    path = stores.build(f"bundled-{n}", spec, lambda: papers(bundled_corpus()), base=base)
    return path, load_cases(ROOT / "assistant" / "data" / "seed_questions.jsonl", warn)


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


def score(bot: Assistant, cases: list[list[Case]], kind: str, off_topic: bool) -> dict[str, float]:
    """Run every case through one retriever (after a warm-up); return its metrics and latency."""
    bot.retrieve("warm up the caches", top_k=max(KS), retriever=kind)
    # The threshold check embeds every answer's sentences: only where its figures are printed.
    metrics, rows = evaluate_retrieval(bot, cases, kind, KS, _Quiet(), kept=off_topic)
    times = [r["retrieval_ms"] for r in rows]
    metrics |= {"p50_ms": statistics.median(times), "p95_ms": percentile(times, 95)}
    if off_topic:
        for name, questions in (("off_topic_declined", OFF_TOPIC), ("held_out_declined", HELD_OUT)):
            declined, _ = evaluate_retrieval(bot, [[Case(q, ())] for q in questions], kind, KS, _Quiet())
            metrics[name] = declined["unanswerable_declined"]
    return metrics


def table(title: str, rows: Iterator[tuple[str, dict[str, float]]], columns: list[str]) -> None:
    """Print one Markdown table, a row per configuration, as the rows come in."""
    print(f"\n### {title}\n")
    print("| embedding | retriever | rerank | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 3) + "|", flush=True)
    for name, row in rows:
        cells = [f"{row[c]:.1f}" if c.endswith("_ms") else f"{row.get(c) or 0:.3f}" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def assignments(text: str) -> list[dict[str, str]]:
    """Parse `NAME=V1|V2,NAME=V` into its combinations: [{NAME: V1, NAME: V}, {NAME: V2, NAME: V}]."""
    names, choices = [], []
    for part in (p for p in text.split(",") if p.strip()):
        name, sep, values = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{part!r}: write NAME=VALUE (a retrieval setting)")
        names.append(name.strip())
        choices.append([v.strip() for v in values.split("|")])
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


def gains_table(title: str, rows: Iterator[tuple[str, dict[str, float]]]) -> None:
    """Print one Markdown table of levers: each row's figures, with its gain over the first (baseline) row."""
    metrics = ["recall@1", "recall@5", "recall@10", "ndcg@10", "mrr"]
    print(f"\n### {title}\n")
    print("| lever | " + " | ".join(metrics) + " | p50_ms | p95_ms |")
    print("|---" * (len(metrics) + 3) + "|", flush=True)
    base: dict[str, float] | None = None
    for name, row in rows:
        base = base or row
        cells = [
            f"{row[m]:.3f}" + (f" ({row[m] - base[m]:+.3f})" if row is not base else "") for m in metrics
        ]
        cells += [f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def main() -> int:
    """Parse flags, build the stores, print one table per set (and size)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated: {', '.join(SETS)}")
    parser.add_argument("--data", type=Path, default=BIG, help="the Kaggle JSON lines the papers come from")
    parser.add_argument(
        "--distractors", type=int, default=DISTRACTORS, help="spar/bundled: papers of --data added"
    )
    parser.add_argument("--embedding", default="minilm", help="embedding spec(s), comma-separated")
    parser.add_argument("--retriever", default="dense,bm25,hybrid", help="retriever(s), comma-separated")
    parser.add_argument("--rerank", default="none,sentences", help="rerank stage(s), comma-separated")
    parser.add_argument(
        "--candidates", default="", help="rerank candidates, comma-separated (default: setting)"
    )
    parser.add_argument("--n", type=int, action="append", help="titles/generated: papers (default 20000)")
    parser.add_argument("--questions", type=int, default=300, help="titles/generated: papers asked about")
    parser.add_argument(
        "--stores", type=Path, default=Path("/tmp/arxiv-assistant-bench"), help="store folder"
    )
    parser.add_argument(
        "--fusion", default="", help="hybrid fusion mode(s), comma-separated (default: setting)"
    )
    parser.add_argument("--dense-weight", default="", help="hybrid's dense share(s), comma-separated")
    parser.add_argument(
        "--lever",
        action="append",
        default=[],
        help="retrieval settings changed alone, NAME=V1|V2,NAME=V (repeatable): a table of gains",
    )
    parser.add_argument("--set", default="", help="retrieval settings of every row, NAME=VALUE,...")
    parser.add_argument(
        "--min-score-growth",
        type=float,
        help="relevance threshold's growth with the store's size (default: the setting; 0: fixed)",
    )
    args = parser.parse_args()
    sets = [s for s in args.sets.split(",") if s]
    if unknown := set(sets) - set(SETS):
        parser.error(f"--sets: unknown {sorted(unknown)}; use {', '.join(SETS)}")
    specs = args.embedding.split(",")
    kinds = args.retriever.split(",")
    reranks = args.rerank.split(",")
    counts: list[int | None] = [int(c) for c in args.candidates.split(",") if c] or [None]
    fusions: list[str | None] = [f for f in args.fusion.split(",") if f] or [None]
    weights: list[float | None] = [float(w) for w in args.dense_weight.split(",") if w] or [None]
    try:
        [base] = assignments(args.set) if args.set else [{}]
        levers = [combo for text in args.lever for combo in assignments(text)]
    except ValueError as exc:
        parser.error(f"--set/--lever: {exc} (one value each in --set)")
    args.stores.mkdir(parents=True, exist_ok=True)
    stores = Stores(args.stores, args.min_score_growth, None)

    def lever_rows(
        paths: dict[str, Path], cases: list[list[Case]], titles: bool
    ) -> Iterator[tuple[str, dict[str, float]]]:
        """The baseline, then each lever alone, per embedding x retriever (no rerank: levers come first)."""
        for spec, kind in itertools.product(specs, kinds):
            for lever in [{}, *levers]:
                changed = ",".join(f"{k}={v}" for k, v in lever.items()) or "baseline"
                bot = stores.assistant(paths[spec], spec, "none", titles=titles, retrieval=base | lever)
                yield f"{changed} ({spec} {kind})", score(bot, cases, kind, False)

    def configurations(
        paths: dict[str, Path], cases: list[list[Case]], titles: bool, off_topic: bool
    ) -> Iterator[tuple[str, dict[str, float]]]:
        for spec, kind, fusion, weight, rerank, count in itertools.product(
            specs, kinds, fusions, weights, reranks, counts
        ):
            if (rerank == "none" and count != counts[0]) or (
                kind != "hybrid" and (fusion, weight) != (fusions[0], weights[0])
            ):
                continue  # candidates change nothing without a rerank stage, fusion nothing but hybrid
            stores.candidates = count
            bot = stores.assistant(paths[spec], spec, rerank, titles=titles)
            retrieval = bot.settings.retrieval
            retrieval.fusion = fusion or retrieval.fusion  # type: ignore[assignment]
            retrieval.dense_weight = retrieval.dense_weight if weight is None else weight
            named = kind
            if kind == "hybrid" and (len(fusions) > 1 or len(weights) > 1):
                named = f"hybrid ({retrieval.fusion}, dense {retrieval.dense_weight:g})"
            label = rerank if rerank == "none" else f"{rerank} ({retrieval.rerank_candidates})"
            yield f"{spec} | {named} | {label}", score(bot, cases, kind, off_topic)

    def report(
        title: str, paths: dict[str, Path], cases: list[list[Case]], titles: bool, off_topic: bool
    ) -> None:
        """Print one set's table: a row per configuration, or with `--lever`, each lever's gains."""
        if levers:
            gains_table(
                title + (f" (all rows: {args.set})" if args.set else ""), lever_rows(paths, cases, titles)
            )
        else:
            columns = COLUMNS + THRESHOLD_COLUMNS if off_topic else COLUMNS
            table(title, configurations(paths, cases, titles, off_topic), columns)

    for name in [s for s in sets if s in ("scifact", "spar", "bundled")]:
        paths = {}
        for spec in specs:
            paths[spec], cases = jsonl_set(name, stores, spec, args.data, args.distractors)
        n_cases = sum(len(c) for c in cases)
        report(f"{name}: {n_cases} questions", paths, cases, True, False)
    sizes = args.n or [DISTRACTORS]
    smallest = papers(args.data, min(sizes)) if {"titles", "generated"} & set(sets) else []
    titled = [p for p in smallest if p.title]
    sample = random.Random(0).sample(titled, min(args.questions, len(titled)))
    for name in [s for s in sets if s in ("titles", "generated")]:
        if name == "titles":
            queries = [(p.title or "", p.arxiv_id) for p in sample]
        else:
            tag = hashlib.sha256(QUESTION_PROMPT.encode()).hexdigest()[:8]
            queries = generated_questions(sample, args.stores / f"questions-{args.data.name}-{tag}.jsonl")
        cases = [[Case(q, (arxiv_id,))] for q, arxiv_id in queries]
        for n in sizes:

            def corpus(n: int = n) -> list[Paper]:
                return smallest if n == min(sizes) else papers(args.data, n)

            name_n = f"{args.data.name}-{n}-notitle"
            paths = {s: stores.build(name_n, s, corpus, titles=False) for s in specs}
            title = f"{name}: {len(cases)} queries, {n} papers (titles not indexed)"
            report(title, paths, cases, False, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
