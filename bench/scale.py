"""Scale-out benchmark: the same papers through (a) today's single-process ingest, (b) `--ray` on one
local node, (c) `--ray` on a two-node local Ray cluster, each into its own `chroma run` server.

Prints papers/s and peak RSS per process (the ingest command, its embedding workers, Ray's own
processes, the Chroma server), the Ray overhead as a ratio, and a projection for all of arXiv
(2.7M papers) from the CPU seconds per paper that (c) measured: embedding workers on N machines of
2 cores against the one writer (the driver and the Chroma server). Then query latency (hybrid and
dense retrieval, paper titles as queries) and the keyword index's cost at 75k and 150k papers, the
150k store made by ingesting the 75k file again under new ids (first digit of the id -> 9).

    python bench/scale.py                              # 5,000 papers, then 75k / 150k: ~2 h, quiet machine
    python bench/scale.py --papers 300 --no-queries    # a smoke run
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout: bench/ as a package, and harness/

from bench.retrieval import percentile  # noqa: E402
from harness.servers import chroma, descendants, ray_cluster  # noqa: E402

DEFAULT_DATA = (
    Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data")) / "arxiv-cs-75k.kaggle.jsonl.gz"
)
ARXIV = 2_700_000
TICKS = os.sysconf("SC_CLK_TCK")


class Watch:
    """Samples every process below this one: its command line, peak RSS (VmHWM) and CPU seconds."""

    def __init__(self, every: float = 0.5) -> None:
        self.every = every
        self.seen: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._sample()
        for info in self.seen.values():  # processes already running (a cluster): count from now
            info["cpu0"] = info["cpu"]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def _sample(self) -> None:
        for pid in descendants():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                status = Path(f"/proc/{pid}/status").read_text()
                info = self.seen.setdefault(pid, {"cmd": "", "cpu0": 0.0})
                # Again each time: a Ray worker starts as ray::IDLE and is named for its actor later.
                info["cmd"] = _cmdline(pid) or info["cmd"]
            except OSError:
                continue  # gone meanwhile
            info["cpu"] = (int(stat[11]) + int(stat[12])) / TICKS
            hwm = [line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")]
            info["peak_mb"] = max(info.get("peak_mb", 0.0), int(hwm[0]) / 1024 if hwm else 0.0)

    def role(self, pid: int, info: dict[str, Any], driver: int) -> str:
        """Name what a process is: the ingest command, an embedding worker, Chroma or Ray itself."""
        cmd = info["cmd"]
        if pid == driver:
            return "ingest command"
        if "MapWorker" in cmd:
            return "embedding worker"
        if "chroma" in cmd and " run " in f" {cmd} ":
            return "chroma run"
        return "Ray's own"

    def by_role(self, driver: int) -> dict[str, dict[str, float]]:
        """Return per role: processes, the largest peak RSS, summed CPU seconds."""
        out: dict[str, dict[str, float]] = {}
        for pid, info in self.seen.items():
            row = out.setdefault(self.role(pid, info, driver), {"n": 0, "peak_mb": 0.0, "cpu": 0.0})
            row["n"] += 1
            row["peak_mb"] = max(row["peak_mb"], info.get("peak_mb", 0.0))
            row["cpu"] += info.get("cpu", 0.0) - info["cpu0"]
        return out


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def first_papers(data: Path, n: int, out: Path) -> Path:
    """Write the first `n` records of `data` to `out` (plain JSON lines)."""
    with gzip.open(data, "rt", encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        dst.writelines(itertools.islice(src, n))
    return out


def renamed(data: Path, out: Path) -> Path:
    """Write `data` again with every id's first digit made 9 (2501.01234 -> 9501.01234): new papers."""
    with gzip.open(data, "rt", encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for line in src:
            record = json.loads(line)
            record["id"] = "9" + str(record["id"])[1:]
            dst.write(json.dumps(record) + "\n")
    return out


def folder_mb(*folders: Path) -> float:
    """Return the size of everything under `folders`, in MB."""
    return sum(f.stat().st_size for d in folders for f in d.rglob("*") if f.is_file()) / 1e6


def ingest_run(name: str, source: Path, work: Path, ray: str | None, papers: int) -> dict[str, Any]:
    """Run `assistant ingest` (with `--ray ray` unless None) into a fresh `chroma run`; measure it."""
    data, local = work / f"{name}-chroma", work / f"{name}-local"
    for folder in (data, local):
        shutil.rmtree(folder, ignore_errors=True)
    with chroma(data, work / f"{name}-chroma.log") as port:
        env = os.environ | {
            "PYTHONPATH": str(ROOT),
            "ASSISTANT_STORE_MODE": "server",
            "ASSISTANT_STORE_PORT": str(port),
            "ASSISTANT_STORE": str(local),
        }
        argv = [
            sys.executable,
            "-m",
            "assistant",
            "ingest",
            str(source),
            *(["--ray", ray] if ray is not None else []),
        ]
        with Watch() as watch:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = proc.communicate()
            seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{name}: {' '.join(argv)} failed:\n{err[-3000:]}")
        store_mb = folder_mb(data, local)
    return {
        "name": name,
        "seconds": seconds,
        "rate": papers / seconds,
        "summary": out.strip().splitlines()[-1],
        "roles": watch.by_role(proc.pid),
        "store_mb": store_mb,
    }


def ingest_table(rows: list[dict[str, Any]], papers: int) -> None:
    """Print papers/s and peak RSS per process of each run."""
    print(f"\n### Ingest of the same {papers:,} papers into a `chroma run` server\n")
    print("| run | papers/s | wall s | ingest command peak MB | embedding workers (peak MB each) "
          "| Ray's own processes (peak MB each) | chroma run peak MB | summary |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        roles = row["roles"]
        worker = roles.get("embedding worker", {"n": 0, "peak_mb": 0})
        own = roles.get("Ray's own", {"n": 0, "peak_mb": 0})
        print(
            f"| {row['name']} | {row['rate']:.1f} | {row['seconds']:.0f} "
            f"| {roles['ingest command']['peak_mb']:.0f} | {worker['n']} ({worker['peak_mb']:.0f}) "
            f"| {own['n']} ({own['peak_mb']:.0f}) | {roles.get('chroma run', {'peak_mb': 0})['peak_mb']:.0f} "
            f"| {row['summary']} |"
        )
    single = rows[0]["rate"]
    print()
    for row in rows[1:]:
        print(f"Ray overhead, {row['name']}: {single / row['rate']:.2f}x the single process's time")


def projection(two_nodes: dict[str, Any], papers: int, machines: list[int], mb_per_paper: float) -> None:
    """Print the time for 2.7M papers on N embedding machines of 2 cores, from (c)'s CPU per paper."""
    roles = two_nodes["roles"]
    embed = roles["embedding worker"]["cpu"] / papers  # CPU s per paper on the workers
    driver = roles["ingest command"]["cpu"] / papers
    server = roles.get("chroma run", {"cpu": 0.0})["cpu"] / papers
    writer = 1 / max(driver, server)  # the driver and the server, each on a core of its own
    print(f"\n### Projection for {ARXIV:,} papers (measured CPU per paper in {two_nodes['name']})\n")
    print(f"- embedding workers: {embed * 1000:.1f} CPU ms per paper -> "
          f"{2 / embed:.1f} papers/s per 2-core machine")  # fmt: skip
    print(f"- the one writer: ingest command {driver * 1000:.1f} CPU ms, chroma run "
          f"{server * 1000:.1f} CPU ms per paper -> at most {writer:.0f} papers/s")  # fmt: skip
    print(f"- store: {mb_per_paper * 1000:.1f} MB per 1,000 papers -> {mb_per_paper * ARXIV / 1000:.0f} GB\n")
    print("| embedding machines (2 cores) | papers/s | hours for 2.7M | bound by |")
    print("|---|---|---|---|")
    for n in machines:
        rate = min(n * 2 / embed, writer)
        bound = "writer" if n * 2 / embed >= writer else "embedding"
        print(f"| {n} | {rate:.0f} | {ARXIV / rate / 3600:.1f} | {bound} |")


def query_latency(store: Path, questions: list[str]) -> dict[str, float]:
    """Return p50/p95 ms of hybrid and dense retrieval, and the keyword index's load time, RSS and size."""
    from assistant.config import Settings
    from assistant.embeddings import default_embedding
    from assistant.pipeline import Assistant

    bot = Assistant(Settings.load(overrides={"store.path": store, "answer.llm": "extractive"}, env={}),
                    embed_model=default_embedding())  # fmt: skip
    before, start = _rss_mb(), time.perf_counter()
    bot.retrieve("warm up", retriever="bm25")  # loads the keyword index
    out = {"index_load_s": time.perf_counter() - start, "index_rss_mb": _rss_mb() - before}
    out["index_disk_mb"] = folder_mb(store / "keyword")
    for kind in ("hybrid", "dense"):
        times = []
        for question in questions:
            start = time.perf_counter()
            bot.retrieve(question, retriever=kind)
            times.append((time.perf_counter() - start) * 1000)
        out[f"{kind}_p50"], out[f"{kind}_p95"] = statistics.median(times), percentile(times, 95)
    out["papers"] = bot.store.paper_count()
    out["store_mb"] = folder_mb(store)
    return out


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def build(store: Path, source: Path) -> float:
    """Ingest `source` into the embedded store `store` (single process); return the seconds taken."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "assistant", "ingest", str(source), "--store", str(store)],
                   env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def queries(args: argparse.Namespace) -> None:
    """Build (once) the 75k and 150k stores and print query latency and keyword-index cost at each."""
    with gzip.open(args.data, "rt", encoding="utf-8") as src:
        titles = [t for line in src if (t := json.loads(line).get("title"))]
    questions = random.Random(0).sample(titles, args.questions)
    small, big = args.work / "store-75k", args.work / "store-150k"
    if not (small / "built").is_file():
        shutil.rmtree(small, ignore_errors=True)
        seconds = build(small, args.data)
        (small / "built").write_text(f"{seconds:.0f}")
    if not (big / "built").is_file():
        shutil.rmtree(big, ignore_errors=True)
        shutil.copytree(small, big)
        (big / "built").unlink()
        seconds = build(big, renamed(args.data, args.work / "renamed-75k.jsonl"))
        (big / "built").write_text(f"{seconds:.0f}")
    print("\n### Queries and the keyword index by store size (embedded store, titles as queries)\n")
    print("| papers | store MB | hybrid p50 ms | p95 | dense p50 ms | p95 | keyword index on disk MB "
          "| its load s | its RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for store in (small, big):
        row = query_latency(store, questions)
        print(f"| {row['papers']:,} | {row['store_mb']:.0f} | {row['hybrid_p50']:.1f} "
              f"| {row['hybrid_p95']:.1f} | {row['dense_p50']:.1f} | {row['dense_p95']:.1f} "
              f"| {row['index_disk_mb']:.0f} "
              f"| {row['index_load_s']:.1f} | {row['index_rss_mb']:.0f} |")  # fmt: skip


def main() -> int:
    """Run the three ingests, print their table and the projection, then the query part."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Kaggle JSON lines (.gz)")
    parser.add_argument("--papers", type=int, default=5000, help="papers per ingest run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/arxiv-assistant-bench/scale"))
    parser.add_argument("--machines", default="1,2,4,8,16,32", help="embedding machines to project for")
    parser.add_argument("--questions", type=int, default=200, help="title queries per store size")
    parser.add_argument("--no-queries", action="store_true", help="skip the 75k / 150k stores")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = first_papers(args.data, args.papers, args.work / f"first-{args.papers}.jsonl")
    rows = [ingest_run("(a) single process", source, args.work, None, args.papers)]
    rows.append(ingest_run("(b) --ray, one local node", source, args.work, "", args.papers))
    with ray_cluster(2, cpus=1) as cluster:
        rows.append(ingest_run("(c) --ray, two local nodes", source, args.work, cluster.address, args.papers))
    ingest_table(rows, args.papers)
    machines = [int(n) for n in args.machines.split(",")]
    projection(rows[2], args.papers, machines, rows[0]["store_mb"] / args.papers)
    if not args.no_queries:
        queries(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
