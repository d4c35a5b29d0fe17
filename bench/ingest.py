"""Ingest benchmark: abstracts/s and peak RSS of our ingest against llama-index's default path and
the raw encoder, each in its own child process, in the same run and interleaved (the first half of
the records through every part in order, the second half in reverse order), so a machine whose
load drifts biases no part. Ratios are what to read; absolute figures depend on the load.

    python bench/ingest.py                       # the first 20k records, then all 75k (ours only)
    python bench/ingest.py --first 2000 --no-all # a quick run
    python bench/ingest.py --first 0 --stub-all  # all 75k with a stub encoder: the rest's cost

Parts (each a child process, also runnable alone with --part NAME --input FILE):
  raw         the encoder alone: `MiniLMEmbedding.embed` over the exact chunk texts our ingest embeds
  ours        `Ingester.ingest` into a fresh Chroma store, keyword index included
  llamaindex  `VectorStoreIndex.from_documents` over a `ChromaVectorStore`, default transformations,
              with `default_embedding()` (the same model object our ingest uses)
  packaged    the same llama-index path with the model file as shipped (before the int8 rewrite)
  stub        our ingest with a free stand-in encoder: time and memory of everything but the model
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = (
    Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data")) / "arxiv-cs-75k.kaggle.jsonl.gz"
)
PARTS = ("raw", "ours", "llamaindex", "packaged", "stub")


def peak_rss_mb() -> float:
    """Return this process's peak resident memory in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def papers_of(path: Path) -> list:
    """Read every paper of a small benchmark input (bad records are skipped)."""
    from assistant.schema import Paper
    from assistant.sources import read_papers

    return [p for p in read_papers(path) if isinstance(p, Paper)]


def run_raw(path: Path) -> dict:
    """Time the encoder alone on the chunk texts our ingest would embed."""
    from assistant.config import ChunkingSettings
    from assistant.embeddings import default_embedding
    from assistant.ingest.chunking import Chunker, embed_text

    papers = papers_of(path)
    chunker = Chunker(ChunkingSettings())
    texts = [embed_text(node) for paper in papers for node in chunker.nodes(paper)]
    model = default_embedding()
    model.embed(texts[:4])  # load (and, the first time ever, build the cached fast model) untimed
    start = time.perf_counter()
    for offset in range(0, len(texts), 4096):  # the slices our ingest's batches give it
        model.embed(texts[offset : offset + 4096])
    return {"papers": len(papers), "texts": len(texts), "seconds": time.perf_counter() - start}


def stub_embedding() -> object:
    """Return a stand-in encoder: fixed unit vectors at no cost, to measure everything else."""
    import numpy as np

    from assistant.embeddings import DIMENSION, MiniLMEmbedding

    class Stub(MiniLMEmbedding):
        def embed(self, texts: list[str]) -> np.ndarray:
            out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
            out[:, 0] = 1.0
            return out

    return Stub()


def run_ours(path: Path, store: Path, stub: bool = False) -> dict:
    """Time `Ingester.ingest` end to end (reading, chunking, embedding, Chroma, keyword index)."""
    from assistant.config import Settings
    from assistant.embeddings import MODEL_ID, default_embedding
    from assistant.ingest import Ingester
    from assistant.store import Store

    settings = Settings.load(overrides={"store.path": store}, env={})
    model = stub_embedding() if stub else default_embedding()
    model.embed(["warm up"])  # type: ignore[attr-defined]
    store_ = Store.from_settings(settings.store, MODEL_ID, create=True)
    ingester = Ingester(store_, model, settings.chunking)  # type: ignore[arg-type]
    start = time.perf_counter()
    report = ingester.ingest([path])
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    return {
        "papers": report.added,
        "texts": ingester.store.count(),
        "seconds": seconds,
        "store_mb": size / 1e6,
    }


def run_llamaindex(path: Path, store: Path, packaged: bool) -> dict:
    """Time llama-index's default ingest path with the same embedding class."""
    import chromadb
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.embeddings import MiniLMEmbedding, default_embedding, model_path

    model = MiniLMEmbedding(model_file=str(model_path())) if packaged else default_embedding()
    model.embed(["warm up"])
    papers = papers_of(path)
    start = time.perf_counter()
    documents = [
        Document(text=p.abstract, id_=p.arxiv_id, metadata={"arxiv_id": p.arxiv_id, "title": p.title or ""})
        for p in papers
    ]
    client = chromadb.PersistentClient(path=str(store))
    collection = client.get_or_create_collection("bench", embedding_function=None)
    context = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    VectorStoreIndex.from_documents(documents, storage_context=context, embed_model=model)
    return {"papers": len(papers), "texts": collection.count(), "seconds": time.perf_counter() - start}


def part(name: str, path: Path) -> dict:
    """Run one part in this process and return its figures."""
    store = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        if name == "raw":
            out = run_raw(path)
        elif name in ("ours", "stub"):
            out = run_ours(path, store, stub=name == "stub")
        else:
            out = run_llamaindex(path, store, packaged=name == "packaged")
    finally:
        shutil.rmtree(store, ignore_errors=True)
    out |= {"part": name, "rate": out["papers"] / out["seconds"], "peak_rss_mb": peak_rss_mb()}
    return out


def child(name: str, path: Path) -> dict:
    """Run one part in a fresh process, so each peak RSS is its own."""
    command = [sys.executable, __file__, "--part", name, "--input", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"part {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def halves(source: Path, n: int, folder: Path) -> tuple[Path, Path]:
    """Copy the first `n` lines of a (gzipped) JSON-lines file into two plain files, half each."""
    opener = gzip.open if source.suffix == ".gz" else open
    targets = (folder / "first-half.jsonl", folder / "second-half.jsonl")
    with opener(source, "rb") as lines:
        for target, size in zip(targets, (n // 2, n - n // 2), strict=True):
            with open(target, "wb") as out:
                out.writelines(itertools.islice(lines, size))
    return targets


def combined(rows: list[dict]) -> dict:
    """Add up one part's runs over both halves (peak RSS: the larger)."""
    out = dict(rows[0])
    for key in ("papers", "texts", "seconds", "store_mb"):
        if key in out:
            out[key] = sum(r[key] for r in rows)
    out["rate"] = out["papers"] / out["seconds"]
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in rows)
    return out


def show(row: dict) -> str:
    """Format one part's figures."""
    return (
        f"{row['part']:<11} {row['papers']:>7} papers {row['texts']:>7} texts {row['seconds']:>8.1f} s "
        f"{row['rate']:>7.1f} abstracts/s  peak RSS {row['peak_rss_mb']:>6.0f} MB"
        + (f"  store {row['store_mb']:.0f} MB" if "store_mb" in row else "")
    )


def main() -> None:
    """Run the benchmark parts and print figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Kaggle JSON lines (.gz)")
    parser.add_argument("--first", type=int, default=20_000, help="records for the comparison")
    parser.add_argument("--no-all", action="store_true", help="skip our ingest of the whole file")
    parser.add_argument("--stub-all", action="store_true", help="also the whole file with a stub encoder")
    parser.add_argument("--parts", default="raw,ours,llamaindex,packaged", help="parts to compare")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(part(args.part, args.input)))
        return
    if not args.data.is_file():
        raise SystemExit(f"{args.data}: not found; pass --data or set ARXIV_DATA")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    names = args.parts.split(",") if args.first else []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        first, second = halves(args.data, args.first, Path(folder)) if names else (None, None)
        runs: dict[str, list[dict]] = {name: [] for name in names}
        for half, order in ((first, names), (second, names[::-1])):
            for name in order:
                runs[name].append(child(name, half))  # type: ignore[arg-type]
        rows = {name: combined(found) for name, found in runs.items()}
        for row in rows.values():
            print(show(row), flush=True)
        ours = rows.get("ours")
        if ours:
            for name in ("raw", "llamaindex", "packaged"):
                if name in rows:
                    print(f"ours / {name}: {ours['rate'] / rows[name]['rate']:.2f}x")
        if args.stub_all:
            print(show(child("stub", args.data) | {"part": "stub (all)"}), flush=True)
        if not args.no_all:
            print(show(child("ours", args.data) | {"part": "ours (all)"}), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
