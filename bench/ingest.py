"""Ingest benchmark: abstracts/s and peak RSS of our ingest against llama-index's default path and
the raw encoder, each measured in its own child process in the same run (ratios are what to read:
the machine is shared and absolute figures are noisy).

    python bench/ingest.py                       # the first 20k records, then all 75k (ours only)
    python bench/ingest.py --first 2000 --no-all # a quick run
    python bench/ingest.py --data PATH.jsonl.gz --first 5000

Parts (each a child process, also runnable alone with --part NAME --input FILE):
  raw         the encoder alone: `MiniLMEmbedding.embed` over the exact chunk texts our ingest embeds
  ours        `Ingester.ingest` into a fresh Chroma store, keyword index included
  llamaindex  `VectorStoreIndex.from_documents` over a `ChromaVectorStore`, default transformations,
              with `default_embedding()` (the same model object our ingest uses)
  packaged    the same llama-index path with the model file as shipped (before the int8 rewrite)
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
PARTS = ("raw", "ours", "llamaindex", "packaged")


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
    from assistant.chunking import Chunker, embed_text
    from assistant.config import ChunkingSettings
    from assistant.embeddings import default_embedding

    papers = papers_of(path)
    chunker = Chunker(ChunkingSettings())
    texts = [embed_text(node) for paper in papers for node in chunker.nodes(paper)]
    model = default_embedding()
    model.embed(texts[:4])  # load (and, the first time ever, build the cached fast model) untimed
    start = time.perf_counter()
    for offset in range(0, len(texts), 4096):  # the slices our ingest's batches give it
        model.embed(texts[offset : offset + 4096])
    return {"papers": len(papers), "texts": len(texts), "seconds": time.perf_counter() - start}


def run_ours(path: Path, store: Path) -> dict:
    """Time `Ingester.ingest` end to end (reading, chunking, embedding, Chroma, keyword index)."""
    from assistant.config import Settings
    from assistant.embeddings import MODEL_ID, default_embedding
    from assistant.ingest import Ingester
    from assistant.store import Store

    settings = Settings.load(overrides={"store.path": store}, env={})
    model = default_embedding()
    model.embed(["warm up"])
    ingester = Ingester(Store.from_settings(settings.store, MODEL_ID, create=True), model, settings.chunking)
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
        elif name == "ours":
            out = run_ours(path, store)
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


def first_records(source: Path, n: int, folder: Path) -> Path:
    """Copy the first `n` lines of a (gzipped) JSON-lines file into a plain file."""
    target = folder / f"first-{n}.jsonl"
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rb") as lines, open(target, "wb") as out:
        out.writelines(itertools.islice(lines, n))
    return target


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
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to compare")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(part(args.part, args.input)))
        return
    if not args.data.is_file():
        raise SystemExit(f"{args.data}: not found; pass --data or set ARXIV_DATA")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        subset = first_records(args.data, args.first, Path(folder))
        rows = {}
        for name in args.parts.split(","):
            rows[name] = child(name, subset)
            print(show(rows[name]), flush=True)
        ours = rows.get("ours")
        if ours:
            for name in ("raw", "llamaindex", "packaged"):
                if name in rows:
                    print(f"ours / {name}: {ours['rate'] / rows[name]['rate']:.2f}x")
        if not args.no_all:
            whole = child("ours", args.data)
            print(show(whole | {"part": "ours (all)"}), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
