"""Accuracy of the question-kind rules (`assistant/retrieve/kinds.py`) on question files nobody tuned them on.

    python bench/kinds.py            # answers-broad(-2k), SPAR requests (all overview-like), held-out singles

A conversation's first turn names its paper and its follow-up leans on it: both are `single` questions
(a follow-up is recognised apart, by `retrieve.condense.is_follow_up`).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.retrieve.kinds import question_kind  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
FILES = {
    "answers-broad": ROOT / "bench" / "questions" / "answers-broad.jsonl",
    "answers-broad-2k": ROOT / "bench" / "questions" / "answers-broad-2k.jsonl",
    "spar": DATA / "bench" / "spar" / "questions.jsonl",
    "answers-heldout": ROOT / "bench" / "questions" / "answers-heldout.jsonl",
}


def expected(case: dict) -> list[tuple[str, str]]:
    """(question, expected kind) pairs of one line of a question file."""
    if "turns" in case:
        return [(turn["question"], "single") for turn in case["turns"]]
    kind = case.get("kind")
    if kind is None:
        kind = "overview" if "qid" in case else "single"  # SPAR: literature searches
    return [(case["question"], kind)]


def main() -> None:
    """Print per-file accuracy, the confusion counts and every miss."""
    for name, path in FILES.items():
        if not path.is_file():
            print(f"{name}: {path} not found")
            continue
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        pairs = [pair for case in lines for pair in expected(case)]
        got = [(q, want, question_kind(q)) for q, want in pairs]
        right = sum(want == kind for _, want, kind in got)
        print(f"{name}: {right}/{len(got)} = {right / len(got):.3f}")
        print("  ", dict(Counter((want, kind) for _, want, kind in got)))
        for question, want, kind in got:
            if want != kind:
                print(f"   miss: want {want}, got {kind}: {question[:110]}")


if __name__ == "__main__":
    main()
