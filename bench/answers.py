"""Answer quality and speed of the bundled local model: the previous answer path against this one, same run.

    python bench/answers.py                       # both paths, every question file, the local model
    python bench/answers.py --baseline 020a5b5    # which commit is "previous" (default: before the judge)
    python bench/answers.py --grammar-cost        # also: generation speed with and without the grammar

The previous path is that commit's `assistant/` package (taken with `git archive`, never checked out), run
in a subprocess beside this one over the same store, alternating question files so load drift hits both.
Each path is driven through `Assistant.stream`, which both have; metrics come from the answers alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    ROOT / "assistant" / "data" / "seed_questions.jsonl",
    ROOT / "bench" / "questions" / "answers-dev.jsonl",
    ROOT / "bench" / "questions" / "answers-heldout.jsonl",
    # Written by a helper session that saw no answers, before the judge was tuned (2026-12-05).
    ROOT / "bench" / "questions" / "answers-reworded.jsonl",
]
BASELINE = "c379b2b"  # main before "Answers you can check" (issue 25): MiniLM support and hand rules
NOT_FOUND = "The indexed abstracts do not answer this question."
_PASSAGE_LABEL = re.compile(r"\bPassage\s*\d", re.IGNORECASE)


def drive(store: Path, llm: str, questions: Path, out: Path) -> None:
    """Answer every question of `questions` with whichever `assistant` package is importable; write rows."""
    from assistant.config import Settings
    from assistant.pipeline import Assistant

    bot = Assistant(Settings.load(overrides={"store.path": store, "answer.llm": llm}, env={}))
    bot.ask("warm up: what is AdaScale?")  # loads the model; not timed
    with out.open("w", encoding="utf-8") as rows:
        for line in questions.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            case = json.loads(line)
            history: list[Any] = []
            for turn in case.get("turns", [case]):
                start = time.perf_counter()
                first = None
                for item in bot.stream(turn["question"], history=history):
                    if isinstance(item, str):
                        first = first if first is not None else time.perf_counter() - start
                        continue
                    result = item
                total = time.perf_counter() - start
                history.append(result)
                timings = getattr(result, "timings", {})
                row = {
                    "file": questions.name,
                    "kind": case.get("kind", ""),
                    "question": turn["question"],
                    "expected_ids": turn["expected_ids"],
                    "answer_contains": turn.get("answer_contains", []),
                    "answer": result.text,
                    "citations": result.citations,
                    "dropped": result.dropped_citations,
                    "unsupported": [s.text for s in getattr(result, "unsupported", [])],
                    "sentences": len(getattr(result, "sentences", [])),
                    "backend": result.backend,
                    "warnings": result.warnings,
                    # The model's first token where the answer says; else the first streamed piece.
                    "first_token_s": timings.get("first_token_s", first if first is not None else total),
                    "first_shown_s": first if first is not None else total,
                    "total_s": total,
                }
                rows.write(json.dumps(row) + "\n")


def metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Score answers as `assistant eval --answers` does, from the rows alone."""
    answerable = [r for r in rows if r["expected_ids"]]
    unanswerable = [r for r in rows if not r["expected_ids"]]
    with_facts = [r for r in rows if r["answer_contains"]]

    def cited_first(row: dict[str, Any]) -> bool:
        return bool(row["citations"]) and row["citations"][0] in row["expected_ids"]

    def facts(row: dict[str, Any]) -> float:
        return statistics.fmean(f.lower() in row["answer"].lower() for f in row["answer_contains"])

    def share(items: list[Any], test: Any) -> float:
        return round(sum(map(test, items)) / len(items), 3) if items else float("nan")

    return {
        "n": len(rows),
        "right_paper_cited": share(answerable, lambda r: bool(set(r["citations"]) & set(r["expected_ids"]))),
        # Every expected paper cited (both, for a comparison).
        "all_papers_cited": share(answerable, lambda r: set(r["expected_ids"]) <= set(r["citations"])),
        "first_citation_right": share(answerable, cited_first),
        "facts_present": share(with_facts, facts),
        "false_refusals": sum(not r["citations"] for r in answerable),
        "unanswerable_refused": share(unanswerable, lambda r: not r["citations"]),
        "passage_artefacts": sum(bool(_PASSAGE_LABEL.search(r["answer"])) for r in rows),
        "mixed_refusals": sum(NOT_FOUND in r["answer"] and bool(r["citations"]) for r in rows),
        "unsupported_sentences": sum(len(r["unsupported"]) for r in rows),
        "sentences": sum(r["sentences"] for r in rows),
        "fallbacks": sum(r["backend"] == "extractive" for r in rows),
        "first_token_s_median": round(statistics.median(r["first_token_s"] for r in rows), 2),
        "first_shown_s_median": round(statistics.median(r["first_shown_s"] for r in rows), 2),
        "total_s_median": round(statistics.median(r["total_s"] for r in rows), 2),
    }


def baseline_package(ref: str, into: Path) -> Path:
    """Unpack commit `ref`'s `assistant/` package into `into` (its data files too); return the folder."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "assistant"], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_path(package: Path | None, store: Path, llm: str, questions: Path, out: Path) -> list[dict[str, Any]]:
    """Drive one question file through one package in a subprocess; return its rows."""
    env = dict(os.environ, PYTHONPATH=str(package) if package else str(ROOT))
    subprocess.run(
        [sys.executable, __file__, "--drive", str(store), llm, str(questions), str(out)], check=True, env=env
    )
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def grammar_cost(store: Path, rounds: int) -> dict[str, float]:
    """Generation speed (tokens/s) and first token of the same prompts with and without the answer grammar."""
    from assistant.answering.context import build_messages, select_context
    from assistant.answering.grammar import answer_grammar
    from assistant.config import Settings
    from assistant.pipeline import Assistant

    bot = Assistant(Settings.load(overrides={"store.path": store, "answer.llm": "local"}, env={}))
    figures: dict[str, list[float]] = {"free": [], "grammar": [], "free_first": [], "grammar_first": []}
    questions = [json.loads(line)["question"] for line in QUESTIONS[1].read_text().splitlines()][:rounds]
    for question in questions:
        passages = bot.retrieve(question)
        from assistant.retrieve.sentences import score_sentences

        relevant = score_sentences(question, passages, bot.embed_model).relevant(bot.min_score())
        if not relevant:
            continue
        context = select_context(relevant, passages, max_tokens=200, paper_ratio=0.8)
        messages = build_messages(question, context)
        for kind in ("free", "grammar") if len(figures["free"]) % 2 == 0 else ("grammar", "free"):
            grammar = answer_grammar(context.ids(), refusal=False) if kind == "grammar" else None
            start = time.perf_counter()
            first = None
            tokens = 0
            for _ in bot._backend.stream(messages, grammar=grammar):
                first = first if first is not None else time.perf_counter() - start
                tokens += 1
            elapsed = time.perf_counter() - start
            figures[kind].append((tokens - 1) / max(elapsed - (first or 0), 1e-9))
            figures[f"{kind}_first"].append(first or elapsed)
    return {name: round(statistics.median(values), 3) for name, values in figures.items() if values}


def main() -> None:
    """Run both answer paths over the question files and print the comparison table."""
    if len(sys.argv) > 1 and sys.argv[1] == "--drive":
        drive(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default=BASELINE, help="commit of the previous answer path")
    parser.add_argument("--llm", default="local", help="answerer spec for both paths (default local)")
    parser.add_argument("--questions", type=Path, nargs="*", default=QUESTIONS, help="question files")
    parser.add_argument(
        "--grammar-cost", action="store_true", help="also time generation with/without grammar"
    )
    parser.add_argument("--rounds", type=int, default=20, help="prompts for --grammar-cost")
    parser.add_argument("--out", type=Path, help="keep the per-question rows here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-answers-"))
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "ingest",
            "--store",
            str(store),
            str(ROOT / "assistant" / "data" / "seed_abstracts.txt"),
        ],
        check=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    previous = baseline_package(args.baseline, work / "baseline")
    rows: dict[str, list[dict[str, Any]]] = {"previous": [], "this": []}
    for i, questions in enumerate(args.questions):
        order = [("previous", previous), ("this", None)]
        for name, package in order if i % 2 == 0 else order[::-1]:
            rows[name] += run_path(
                package, store, args.llm, questions, out / f"{name}-{questions.stem}.jsonl"
            )
    files = [q.name for q in args.questions]
    kinds = sorted({r.get("kind", "") for r in rows["this"]} - {""})
    table = {
        (name, scope): metrics(
            [r for r in rows[name] if scope in ("all", r["file"], f"kind:{r.get('kind', '')}")]
        )
        for name in rows
        for scope in ["all", *files, *(f"kind:{k}" for k in kinds)]
    }
    keys = list(next(iter(table.values())))
    print(f"| path | questions | {' | '.join(keys)} |")
    print("|---" * (len(keys) + 2) + "|")
    for (name, scope), values in table.items():
        print(
            f"| {name} ({args.baseline if name == 'previous' else 'HEAD'}) | {scope} | "
            + " | ".join(str(values[k]) for k in keys)
            + " |"
        )
    if args.grammar_cost:
        print("\ngrammar cost (median over prompts):", json.dumps(grammar_cost(store, args.rounds)))
    print(f"\nrows in {out}")


if __name__ == "__main__":
    main()
