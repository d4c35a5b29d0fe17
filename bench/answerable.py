"""The judge's answerability gate on question files: P(the best passages answer) for answerable and
unanswerable questions, and what each threshold would refuse. No answer is generated.

    python bench/answerable.py bench/questions/answers-dev.jsonl          # the file it was chosen on
    python bench/answerable.py bench/questions/answers-heldout.jsonl bench/questions/answers-reworded.jsonl

Each question (each turn's stand-alone form, for conversations: the first turn only) is retrieved
over the bundled abstracts as `assistant ask` would, cut by the MiniLM relevance threshold (the cheap
first cut: below it, the refusal without the judge), then judged by the bundled local model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.answering.generation import answerable_evidence  # noqa: E402
from assistant.config import Settings  # noqa: E402
from assistant.embeddings import default_embedding  # noqa: E402
from assistant.ingest import Ingester, bundled_corpus  # noqa: E402
from assistant.pipeline import Assistant, open_store  # noqa: E402
from assistant.retrieve.sentences import score_sentences  # noqa: E402

SWEEP = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def main() -> int:
    """Judge every question's best passages; print the rows and the threshold sweep."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", type=Path, nargs="+", help="question files (assistant eval's form)")
    args = parser.parse_args()
    store = Path(tempfile.mkdtemp(prefix="bench-answerable-")) / "store"
    settings = Settings.load(
        overrides={"store.path": store, "answer.llm": "local", "answer.verifier": "local"}, env={}
    )
    Ingester(open_store(settings, for_writing=True), default_embedding(), settings.chunking).ingest(
        [bundled_corpus()]
    )
    bot = Assistant(settings)
    assert bot.judge is not None
    rows = []
    for path in args.questions:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            case = json.loads(line)
            turn = case.get("turns", [case])[0]
            passages = bot.retrieve(turn["question"])
            relevant = score_sentences(turn["question"], passages, bot.sentence_model).relevant(
                bot.min_score()
            )
            start = time.perf_counter()
            p = bot.judge.answerable(turn["question"], answerable_evidence(relevant)) if relevant else None
            rows.append(
                (path.name, bool(turn["expected_ids"]), p, time.perf_counter() - start, turn["question"])
            )
    answerable = [r for r in rows if r[1]]
    unanswerable = [r for r in rows if not r[1]]
    print(f"{len(answerable)} answerable, {len(unanswerable)} unanswerable; judge {bot.judge.name}")
    print("| threshold | false refusals (answerable refused) | unanswerable refused |\n|---|---|---|")
    for t in SWEEP:
        refused = [r for r in rows if r[2] is None or r[2] < t]
        false, right = sum(r[1] for r in refused), sum(not r[1] for r in refused)
        print(f"| {t} | {false}/{len(answerable)} | {right}/{len(unanswerable)} |")
    judged = [r[3] for r in rows if r[2] is not None]
    print(
        f"judge time per question: median {statistics.median(judged):.2f} s" if judged else "nothing judged"
    )
    for name, has, p, seconds, question in rows:
        print(f"{name}\t{'A' if has else 'U'}\t{'-' if p is None else f'{p:.3f}'}\t{seconds:.2f}\t{question}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
