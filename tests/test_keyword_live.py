"""The keyword index keeps up with writes without rebuilding: a question after a write indexes only
what changed, a new small segment ranks as if the index had been built whole, merges run beside
questions, and what a process saves another one loads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Settings
from assistant.embeddings import MiniLMEmbedding
from assistant.ingest import Ingester, IngestReport
from assistant.pipeline import open_store
from assistant.retrieve import Retrieval
from assistant.schema import Paper
from assistant.sources import read_papers
from assistant.store import Store
from tests.helpers.records import paper_record, papers_file, write_kaggle
from tests.helpers.settings import make_settings

PAPERS = 40


def papers(path: Path) -> list[Paper]:
    """The papers of a made-up Kaggle file."""
    return [p for p in read_papers(path) if isinstance(p, Paper)]


@pytest.fixture
def setup(tmp_path: Path, embed: MiniLMEmbedding) -> tuple[Settings, Ingester, Retrieval]:
    """A store of PAPERS made-up papers with its index saved, and a warm retrieval over it."""
    settings = make_settings(tmp_path / "store")
    ingester = Ingester(open_store(settings, for_writing=True), embed, settings.chunking)
    ingester.ingest([papers_file(tmp_path / "first.jsonl", PAPERS)])
    retrieval = Retrieval(ingester.store, embed, settings.retrieval)
    retrieval.retrieve("warm up", 5, kind="bm25")
    return settings, ingester, retrieval


def write(ingester: Ingester, tmp_path: Path, first: int, count: int = 1) -> list[Paper]:
    """Store papers as one batch of a running ingest does: written, the keyword index not refreshed."""
    batch = papers(papers_file(tmp_path / f"new-{first}.jsonl", count, first=first))
    ingester.write(batch, IngestReport())
    return batch


def counting(scan: Callable[..., Iterator[Any]], read: list[int]) -> Callable[..., Iterator[Any]]:
    """Wrap `Store.scan`, adding the number of chunks each page holds to `read`."""

    def wrapped(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for page in scan(*args, **kwargs):
            read.append(len(page[0]))
            yield page

    return wrapped


def top(retrieval: Retrieval, query: str, k: int = 3) -> list[str]:
    """The ids BM25 ranks first for `query`."""
    return [p.arxiv_id for p in retrieval.retrieve(query, k, kind="bm25")]


def test_a_question_after_a_write_indexes_only_what_changed(
    setup: tuple[Settings, Ingester, Retrieval], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ingester, retrieval = setup
    chunks_before = ingester.store.count()
    read: list[int] = []
    monkeypatch.setattr(ingester.store, "scan", counting(ingester.store.scan, read))
    new = write(ingester, tmp_path, first=PAPERS)[0]  # paper 40: one chunk
    assert top(retrieval, "method00040")[0] == new.arxiv_id  # found by the question right after
    # Reading the whole store again (a rebuild) would have read every chunk: the question read one.
    assert sum(read) == ingester.store.count() - chunks_before == 1
    assert top(retrieval, "method00007")[0] == "2501.00007"  # and the rest is still found


def test_a_new_segment_scores_as_the_whole_index_would(
    setup: tuple[Settings, Ingester, Retrieval], tmp_path: Path
) -> None:
    from assistant.store import keyword

    _, ingester, retrieval = setup
    write(ingester, tmp_path, first=PAPERS, count=2)
    query = "graph neural networks message passing method00040"
    segmented = {p.arxiv_id: p.metadata["rank_score"] for p in retrieval.retrieve(query, 8, kind="bm25")}
    assert len(retrieval.keyword_index().segments) == 2  # the 40 papers, and the 2 new ones
    whole = Retrieval(ingester.store, retrieval.embed_model, retrieval.settings)
    keyword.rebuild(ingester.store)  # one segment over everything, as a full build makes it
    rebuilt = {p.arxiv_id: p.metadata["rank_score"] for p in whole.retrieve(query, 8, kind="bm25")}
    assert list(segmented)[:3] == list(rebuilt)[:3]
    # The same BM25 scale: a 2-chunk segment's own statistics would give scores several times lower.
    for arxiv_id in list(rebuilt)[:3]:
        assert segmented[arxiv_id] == pytest.approx(rebuilt[arxiv_id], rel=0.25), arxiv_id


def test_questions_do_not_wait_for_a_merge(
    setup: tuple[Settings, Ingester, Retrieval], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.store.keyword import live  # (imported here: the first test runs on any version)

    _, ingester, retrieval = setup
    release = threading.Event()
    real_merged = live.merged

    def slow_merged(store: Store, segments: list[Any]) -> list[Any]:
        assert release.wait(timeout=60), "never released"
        return real_merged(store, segments)

    monkeypatch.setattr(live, "merged", slow_merged)
    write(ingester, tmp_path, first=PAPERS)
    assert top(retrieval, "method00040")[0] == "2501.00040"  # a merge now starts, and hangs
    write(ingester, tmp_path, first=PAPERS + 1)
    began = time.monotonic()
    assert top(retrieval, "method00041")[0] == "2501.00041"  # found while the merge is stuck
    assert time.monotonic() - began < 10
    assert len(retrieval.keyword_index().segments) == 3
    release.set()
    retrieval.keywords.wait()
    index = retrieval.keyword_index()
    assert len(index.segments) == 2  # the two one-paper segments became one
    assert (
        top(retrieval, "method00041")[0] == "2501.00041" and top(retrieval, "method00040")[0] == "2501.00040"
    )
    # Saved for other processes: a fresh process loads these segments, nothing to catch up.
    assert live.up_to_date(ingester.store)
    again = Retrieval(ingester.store, retrieval.embed_model, retrieval.settings)
    assert [s.name for s in again.keyword_index().segments] == [s.name for s in index.segments]


def test_an_updated_paper_is_found_by_its_new_text_only(
    setup: tuple[Settings, Ingester, Retrieval], tmp_path: Path
) -> None:
    _, ingester, retrieval = setup
    record = paper_record(5) | {"abstract": "We study zyxoquantum flux capacitors.", "title": "Flux"}
    changed = papers(write_kaggle(tmp_path / "changed.jsonl", [record]))
    ingester.write(changed, IngestReport())
    assert top(retrieval, "zyxoquantum")[0] == "2501.00005"
    assert "2501.00005" not in top(retrieval, "method00005")  # its old text is not found any more
