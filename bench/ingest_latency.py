"""Question latency while a separate process ingests, in server mode: `assistant serve` answers
`--clients` chats that ask one question after another against a `chroma run` store, first idle,
then while `assistant ingest` adds `--add` papers to the same server store. Reports p50/p95 of
each phase, their ratio, and whether the new papers are found once the ingest is done.

    python bench/ingest_latency.py                     # the 75k file in the store, 5,000 papers added
    python bench/ingest_latency.py --papers 2000 --add 300 --idle 20  # a quick run
    python bench/ingest_latency.py --code /path/to/other/checkout     # the same run with other code

The store with `--papers` papers is built once (35-60 min of CPU for all 75k, under `nice`; an
interrupted build resumes) and kept in `--work`/base; each run copies it, so added papers never
accumulate. serve and ingest share one local folder (store.path: the keyword index), as they would
on one machine. The new papers are the records after the first `--papers` (real, unseen papers)
while the file has them, else copies of the first ones under new ids (2999.NNNNN: a month that does
not exist).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout: harness/ holds the servers and the chats

from harness.chats import client, serving  # noqa: E402
from harness.servers import chroma  # noqa: E402

DEFAULT_DATA = (
    Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data")) / "arxiv-cs-75k.kaggle.jsonl.gz"
)
STARTUP_SECONDS = 1800  # serve's first keyword index over 75k papers when it has none saved


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def records(data: Path) -> Iterator[dict[str, Any]]:
    """Yield the file's JSON records in order."""
    with gzip.open(data, "rt", encoding="utf-8") if data.suffix == ".gz" else data.open() as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def inputs(data: Path, papers: int, add: int, folder: Path) -> tuple[Path, Path, list[str]]:
    """Write the base records and the new ones as JSON lines; return them and the questions to ask."""
    base, new = folder / "base.jsonl", folder / "new.jsonl"
    titles: list[str] = []
    first: list[dict[str, Any]] = []  # kept in case the file runs out of new papers
    added = 0
    stream = records(data)
    with base.open("w") as out:
        for row in itertools.islice(stream, papers):
            out.write(json.dumps(row) + "\n")
            titles.append(" ".join(str(row.get("title") or "").split()))
            if len(first) < add:
                first.append(row)
    with new.open("w") as out:
        for row in itertools.islice(stream, add):
            out.write(json.dumps(row) + "\n")
            added += 1
        for n, row in enumerate(first[: add - added]):  # copies of the first papers under new ids
            out.write(json.dumps(row | {"id": f"2999.{n:05d}"}) + "\n")
    random.Random(7).shuffle(titles)
    return base, new, [t for t in titles if t][:500]


def env_for(port: int, local: Path, code: Path) -> dict[str, str]:
    """The environment of serve and ingest: server mode on `port`, the keyword index in `local`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_"))}
    return env | {
        "PYTHONPATH": str(code),
        "ASSISTANT_STORE_MODE": "server",
        "ASSISTANT_STORE_PORT": str(port),
        "ASSISTANT_STORE": str(local),
        "ANONYMIZED_TELEMETRY": "False",
    }


def ingest(source: Path, env: dict[str, str], log: Path, nice: int) -> subprocess.Popen[bytes]:
    """Start `assistant ingest SOURCE` (niced by `nice`) writing its output to `log`."""
    argv = ["nice", "-n", str(nice), sys.executable, "-m", "assistant", "ingest", str(source)]
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def ensure_base(args: argparse.Namespace, base: Path, folder: Path) -> None:
    """Build the store of the first `--papers` papers in `--work` unless it is there (kept for later runs).

    An interrupted build resumes: the ingest skips the papers already stored without embedding them.
    """
    done = folder / "built"
    if done.is_file():
        if done.read_text().strip() == str(args.papers):
            return
        shutil.rmtree(folder)  # built with another number of papers
    folder.mkdir(parents=True, exist_ok=True)
    print(f"building the store of {args.papers} papers in {folder} (once)", file=sys.stderr, flush=True)
    with chroma(folder / "chroma", folder / "chroma.log") as port:
        proc = ingest(base, env_for(port, folder / "local", ROOT), folder / "ingest.log", args.nice)
        if proc.wait() != 0:
            raise SystemExit(f"building the store failed: {(folder / 'ingest.log').read_text()[-2000:]}")
    done.write_text(str(args.papers))


class Askers:
    """`count` chats, each asking question after question through its own `gradio_client` session."""

    def __init__(self, url: str, questions: list[str], count: int) -> None:
        self.sessions = [client(url) for _ in range(count)]
        self.questions = questions
        self.times: list[tuple[float, float, bool]] = []  # (started, seconds, failed)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every chat asking."""
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._ask, args=(s, n), daemon=True) for n, s in enumerate(self.sessions)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> list[tuple[float, float, bool]]:
        """Stop asking (each chat finishes its question); return and forget what was timed."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._lock:
            times, self.times = self.times, []
        return times

    def _ask(self, session: Any, n: int) -> None:
        for question in itertools.islice(itertools.cycle(self.questions), n * 37, None):
            if self._stop.is_set():
                return
            began = time.perf_counter()
            try:
                session.predict(message=question, api_name="/chat")
                failed = False
            except Exception:  # a refused or failed request counts, and is reported
                failed = True
            with self._lock:
                self.times.append((began, time.perf_counter() - began, failed))


def row(phase: str, times: list[tuple[float, float, bool]], seconds: float) -> str:
    """One table row: questions answered, failures, p50, p95 and max latency, questions/s."""
    latencies = [t for _, t, failed in times if not failed]
    failed = sum(failed for _, _, failed in times)
    if not latencies:
        return f"| {phase} | 0 | {failed} | - | - | - | - |"
    cells = [
        phase,
        str(len(latencies)),
        str(failed),
        f"{statistics.median(latencies):.2f}",
        f"{percentile(latencies, 95):.2f}",
        f"{max(latencies):.2f}",
        f"{len(latencies) / seconds:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


def found_share(url: str, new: Path, sample: int) -> tuple[int, int]:
    """Ask BM25 for the titles of `sample` new papers; return how many find their paper in the top 5."""
    rows = [json.loads(line) for line in new.read_text().splitlines()]
    picked = random.Random(3).sample(rows, min(sample, len(rows)))
    session = client(url)
    hits = 0
    for record in picked:
        title = " ".join(str(record.get("title") or "").split())
        result = session.predict(message=title, retriever="bm25", api_name="/chat")
        hits += record["id"] in {p["arxiv_id"] for p in result["passages"]}
    return hits, len(picked)


def main() -> int:
    """Build (once) and copy the store, serve it, time the chats idle and while ingesting; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Kaggle JSON lines (.gz)")
    parser.add_argument("--papers", type=int, default=74_728, help="papers in the store (default: all 75k)")
    parser.add_argument("--add", type=int, default=5000, help="papers the ingest adds")
    parser.add_argument("--clients", type=int, default=4, help="chats asking at once")
    parser.add_argument("--idle", type=float, default=120.0, help="seconds of asking before the ingest")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the ingest process")
    parser.add_argument("--found", type=int, default=50, help="new papers whose titles are asked afterwards")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose serve and ingest run")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/arxiv-assistant-bench/server-75k"), help="kept store"
    )
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"{args.data}: not found; pass --data or set ARXIV_DATA")
    args.work.mkdir(parents=True, exist_ok=True)
    run = args.work / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    try:
        base, new, questions = inputs(args.data, args.papers, args.add, run)
        ensure_base(args, base, args.work / "base")
        shutil.copytree(args.work / "base" / "chroma", run / "chroma")
        shutil.copytree(args.work / "base" / "local", run / "local")
        load = os.getloadavg()
        with chroma(run / "chroma", run / "chroma.log") as port:
            env = env_for(port, run / "local", args.code)
            ours = {k: v for k, v in env.items() if k.startswith("ASSISTANT_") or k == "PYTHONPATH"}
            with serving(run / "serve", "extractive", env=ours, startup=STARTUP_SECONDS) as url:
                askers = Askers(url, questions, args.clients)
                askers.start()
                time.sleep(args.idle)
                idle = askers.stop()
                askers.start()
                began = time.perf_counter()
                proc = ingest(new, env, run / "ingest.log", args.nice)
                proc.wait()
                ingest_seconds = time.perf_counter() - began
                during = askers.stop()
                summary = "".join((run / "ingest.log").read_text().strip().splitlines()[-1:])
                hits, asked = found_share(url, new, args.found)
        print(
            f"{os.cpu_count()} CPUs; load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after; "
            f"store {args.papers:,} papers; {args.clients} chats; code {args.code}"
        )
        print(f"ingest of {args.add:,} papers (nice {args.nice}): {ingest_seconds:.0f} s; {summary}")
        print("\n| phase | questions | failed | p50 s | p95 s | max s | questions/s |")
        print("|---|---|---|---|---|---|---|")
        print(row("idle", idle, args.idle))
        print(row("during the ingest", during, ingest_seconds))
        ok = [t for _, t, failed in idle if not failed], [t for _, t, failed in during if not failed]
        if all(ok):
            ratio = percentile(ok[1], 95) / percentile(ok[0], 95)
            print(f"\np95 during / idle: {ratio:.2f}x (target <= 2x)")
        print(f"new papers found by their title afterwards (bm25, top 5): {hits}/{asked}")
    finally:
        shutil.rmtree(run / "chroma", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
