"""Scale: the fast model form (on real abstracts of the 75k file), incremental re-ingest (embedding
calls counted), delete and prune, and kill -9 at several points followed by a resume."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from assistant.cli import main
from assistant.config import ChunkingSettings
from assistant.embeddings import MiniLMEmbedding, bundled_texts, fast_model_path, model_inputs, model_path
from assistant.embeddings.onnx_optimize import optimized_path
from assistant.ingest import Ingester, bundled_corpus, count_records
from assistant.ingest.chunking import Chunker
from assistant.pipeline import Assistant, open_store
from assistant.schema import Paper
from assistant.sources import read_papers
from assistant.store import keyword
from tests.helpers.records import papers_file
from tests.helpers.settings import ROOT, make_settings

BIG = "arxiv-cs-75k.kaggle.jsonl.gz"
CALIBRATION = model_inputs(bundled_texts()[:2])


class CountingEmbedding(MiniLMEmbedding):
    """The real model, counting the texts it is asked to embed."""

    def embed(self, texts: list[str]) -> np.ndarray:
        self.__dict__.setdefault("calls", []).append(len(texts))
        return super().embed(texts)


def chunk_ids(path: Path) -> set[str]:
    """Return the chunk ids an ingest of `path` must end up with."""
    chunker = Chunker(ChunkingSettings())
    papers = {p.arxiv_id: p for p in read_papers(path) if isinstance(p, Paper)}
    return {node.node_id for paper in papers.values() for node in chunker.nodes(paper)}


@pytest.mark.slow
def test_fast_model_is_cached_and_matches_the_packaged_one(data_dir: Path, embed: MiniLMEmbedding) -> None:
    assert fast_model_path() != model_path()  # the int8-compute form is in use
    with gzip.open(data_dir / BIG, "rt") as lines:
        records = [json.loads(line) for line in itertools.islice(lines, 16)]
    texts = [f"title: {r['title']}\n\n{r['abstract']}" for r in records]
    fast = embed.embed(texts)
    packaged = MiniLMEmbedding(model_file=str(model_path())).embed(texts)
    assert float((fast * packaged).sum(axis=1).min()) >= 0.99
    # Padding is masked: a short text padded to a long one's width embeds as it does alone (up to
    # the int8 activation scale, which is per batch; an unmasked pad would fall far below 0.99).
    alone = embed.embed(["Sparse attention kernels."])[0]
    before, embed.batch_tokens = embed.batch_tokens, 10_000
    try:
        padded = embed.embed(["Sparse attention kernels.", texts[0]])[0]
    finally:
        embed.batch_tokens = before
    assert float(alone @ padded) >= 0.99


@pytest.mark.slow
def test_rewrite_is_built_once_and_a_refused_one_is_remembered(tmp_path: Path) -> None:
    built = optimized_path(model_path(), "ab" * 32, CALIBRATION, lambda candidate: True, tmp_path)
    assert built is not None and built.stat().st_size > 0
    # Every feed-forward down projection is split: int8 for most channels, fp32 for the outliers.
    nodes = onnx.load(str(built)).graph.node
    assert sum(n.op_type == "DynamicQuantizeMatMul" for n in nodes) == 6 * 6
    assert sum(n.op_type == "MatMul" for n in nodes) == 6
    assert (
        optimized_path(model_path(), "ab" * 32, CALIBRATION, lambda candidate: 1 / 0, tmp_path) == built
    )  # cached
    assert optimized_path(model_path(), "cd" * 32, CALIBRATION, lambda candidate: False, tmp_path) is None
    assert (
        optimized_path(model_path(), "cd" * 32, CALIBRATION, lambda candidate: 1 / 0, tmp_path) is None
    )  # remembered
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".onnx", ".refused"]  # no temp file left


def test_unchanged_papers_are_not_embedded_again(tmp_path: Path) -> None:
    path = papers_file(tmp_path / "in.jsonl", 12)
    model = CountingEmbedding()
    settings = make_settings(tmp_path / "s")
    run = Ingester(open_store(settings, for_writing=True), model, settings.chunking)
    first = run.ingest([path])
    assert (first.added, sum(model.calls)) == (12, len(chunk_ids(path)))
    model.calls.clear()
    again = run.ingest([path])
    assert (again.unchanged, again.added, again.updated, model.calls) == (12, 0, 0, [])
    # One changed abstract: only its chunks are embedded, its text and its BM25 entry change.
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[3]["abstract"] = "We study zyxoquantum flux capacitors in retrieval systems."
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    changed = run.ingest([path])
    assert (changed.updated, changed.unchanged, sum(model.calls)) == (1, 11, 1)
    paper = records[3]["id"]
    assert run.store.get_chunks([f"{paper}#0"])[f"{paper}#0"]["document"].startswith("We study zyxoquantum")
    hits = Assistant(settings, embed_model=model).retrieve("zyxoquantum capacitors", retriever="bm25")
    assert hits[0].arxiv_id == paper


def test_delete_and_prune(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    store_path = tmp_path / "s"
    settings = make_settings(store_path)
    run = Ingester(open_store(settings, for_writing=True), embed, settings.chunking)
    run.ingest([bundled_corpus()])
    assert main(["delete", "--store", str(store_path), "arXiv:2305.14387v2", "2302.05733", "9999.99999"]) == 0
    assert run.store.paper_count() == 8
    assert not {"2305.14387", "2302.05733"} & run.store.paper_ids()
    ids = {i.partition("#")[0] for i in keyword.load_or_build(run.store).live_ids()}
    assert "2305.14387" not in ids and len(ids) == 8
    # Pruning against a file of 3 other papers leaves exactly those 3.
    report = run.ingest([papers_file(tmp_path / "three.jsonl", 3)], prune=True)
    assert (report.added, report.removed) == (3, 8)
    assert run.store.paper_ids() == set(p.arxiv_id for p in read_papers(tmp_path / "three.jsonl"))
    assert "removed 8" in report.summary()


def test_prune_is_skipped_when_an_input_is_unreadable(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    settings = make_settings(tmp_path / "s")
    run = Ingester(open_store(settings, for_writing=True), embed, settings.chunking)
    run.ingest([bundled_corpus()])
    warnings: list[str] = []
    report = run.ingest([bundled_corpus(), tmp_path / "gone.jsonl"], prune=True, warn=warnings.append)
    assert (report.removed, run.store.paper_count()) == (0, 10)
    assert warnings[-1].startswith("not pruning")


def test_count_records_is_cheap_and_exact(data_dir: Path, tmp_path: Path) -> None:
    assert count_records([papers_file(tmp_path / "a.jsonl", 7), data_dir / BIG]) == 7 + 74_728
    assert count_records([bundled_corpus()]) is None  # not JSON lines: no total, the bar shows a rate


# A child that ingests in batches of 4 and says so after each, so the parent can kill it anywhere.
CHILD = """
import sys
from pathlib import Path
import assistant.ingest as ingest
from assistant.config import Settings
from assistant.embeddings import default_embedding
from assistant.pipeline import Assistant, open_store
ingest.BATCH_PAPERS = 4
settings = Settings.load(overrides={"store.path": sys.argv[1]}, env={})
run = ingest.Ingester(open_store(settings, for_writing=True), default_embedding(), settings.chunking)
write = run.write
def noisy(papers, report):
    write(papers, report)
    print("batch", flush=True)
run.write = noisy
print(run.ingest([Path(sys.argv[2])]).summary(), flush=True)
"""


def ingest_child(store: Path, source: Path, kill_after: int | None, delay: float) -> str:
    """Run CHILD; with `kill_after`, kill -9 it `delay` s after that many batches. Return its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), str(source)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    lines = []
    try:
        for line in child.stdout:
            lines.append(line)
            if kill_after is not None and len(lines) >= kill_after:
                time.sleep(delay)  # land inside the next batch's embedding or write
                child.send_signal(signal.SIGKILL)
                break
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    return "".join(lines)


@pytest.mark.slow
def test_kill_9_at_several_points_then_resume(tmp_path: Path) -> None:
    source = papers_file(tmp_path / "in.jsonl", 20)
    store = tmp_path / "s"
    for kill_after, delay in ((1, 0.0), (2, 0.3), (3, 1.0)):
        ingest_child(store, source, kill_after, delay)
    summary = ingest_child(store, source, None, 0).rstrip().splitlines()[-1]
    assert int(summary.split()[1].rstrip(",")) < 20  # the killed runs had stored some papers
    stored = open_store(make_settings(store), for_writing=False)
    ids = stored._collection.get(include=[])["ids"]
    assert len(ids) == len(set(ids))  # no duplicate ids
    assert set(ids) == chunk_ids(source)  # nothing missing, nothing extra
    assert stored.paper_count() == 20
    # And a further run finds everything in place: nothing to embed.
    model = CountingEmbedding()
    again = Ingester(stored, model, ChunkingSettings()).ingest([source])
    assert (again.unchanged, model.__dict__.get("calls")) == (20, None)


@pytest.fixture(autouse=True, scope="module")
def _fast_model_ready() -> None:
    """Build the cached fast model once, before any child process needs it."""
    fast_model_path()
