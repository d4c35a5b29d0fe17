"""Load benchmark: 16 chats at once through `gradio_client` against `assistant serve`.

Runs the load test's chats (harness/chats.py: the seed question set's 14 questions and 2 two-turn
conversations: 18 requests) against two backends: the extractive answerer and a fake hosted
model on 127.0.0.1 (OpenAI's streaming protocol, one word every --fake-delay s), so the model's
wait is real network waiting and the rest is this machine's work. Baseline, in the same run: the
same chats one after another in one session. Every reply is checked as the test checks it.

    python bench/load.py                        # the default serve.concurrency
    python bench/load.py --concurrency 1,2,4,8,16 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout: harness/ holds the chats and the fake model

from assistant.config import Settings  # noqa: E402
from harness.chats import Reply, Turn, at_once, chats, mismatches, one_by_one, problems, serving  # noqa: E402
from harness.servers import fake_openai  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def row(backend: str, run: str, replies: list[Reply], walls: list[float], wrong: int, baseline: float) -> str:
    """Format one table row: latency percentiles over every reply, throughput over every round."""
    seconds = [r.seconds for r in replies]
    wall = statistics.median(walls)
    cells = [
        backend,
        run,
        f"{len(replies) - wrong}/{len(replies)}",
        f"{statistics.median(seconds):.2f}",
        f"{percentile(seconds, 95):.2f}",
        f"{max(seconds):.2f}",
        f"{wall:.1f}",
        f"{len(replies) / sum(walls):.1f}",
        f"{baseline / wall:.1f}x",
    ]
    return "| " + " | ".join(cells) + " |"


def repeat(
    how: Callable[[str, list[list[Turn]]], tuple[list[Reply], float]], url: str, rounds: int
) -> tuple[list[Reply], list[float]]:
    """Run the chats `rounds` times `how` says; return every reply and each round's wall time."""
    replies: list[Reply] = []
    walls = []
    for _ in range(rounds):
        got, wall = how(url, chats())
        replies += got
        walls.append(wall)
    return replies, walls


def wrong(replies: list[Reply], reference: list[Reply], backend: str, echoes: bool) -> int:
    """Count the replies the test would fail: a wrong or foreign answer, or not the one asked alone."""
    return sum(bool(problems([r], backend, echoes=echoes) or mismatches([r], reference)) for r in replies)


def main() -> int:
    """Parse flags, serve each backend at each concurrency, print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Settings.load(env={}).serve.concurrency
    parser.add_argument(
        "--concurrency", default=str(default), help="serve.concurrency value(s), comma-separated"
    )
    parser.add_argument("--rounds", type=int, default=3, help="times each run is repeated (latencies pooled)")
    parser.add_argument(
        "--fake-delay", type=float, default=0.03, help="seconds between the fake model's words"
    )
    parser.add_argument("--backends", default="extractive,fake", help="comma-separated: extractive, fake")
    args = parser.parse_args()
    limits = [int(c) for c in args.concurrency.split(",")]
    load_before = os.getloadavg()
    print(
        "| backend | run | right | p50 s | p95 s | max s | wall s (median round) | requests/s | speed-up |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    with fake_openai(args.fake_delay) as fake, tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            echoes = name == "fake"  # the fake writes each question into its answer
            backend = f"openai-compatible:fake@{fake.url}" if echoes else "extractive"
            label = f"fake hosted, {args.fake_delay * 1000:.0f} ms/word" if echoes else "extractive"
            baseline = 0.0
            for limit in limits:
                with serving(Path(tmp) / f"{name}-{limit}", backend, limit) as url:
                    reference, _ = one_by_one(url, chats())  # warms every path up
                    if not baseline:
                        replies, walls = repeat(one_by_one, url, args.rounds)
                        baseline = statistics.median(walls)
                        bad = wrong(replies, reference, backend, echoes)
                        print(row(label, "one by one, 1 session", replies, walls, bad, baseline), flush=True)
                    replies, walls = repeat(at_once, url, args.rounds)
                    run = f"16 sessions at once, concurrency {limit}"
                    print(
                        row(label, run, replies, walls, wrong(replies, reference, backend, echoes), baseline),
                        flush=True,
                    )
    load_after = os.getloadavg()
    print(
        f"\n{os.cpu_count()} cores; load average (1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_before)} "
        f"before, {'/'.join(f'{x:.1f}' for x in load_after)} after"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
