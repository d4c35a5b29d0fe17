"""Ingest into a real Chroma store on disk: idempotent, incremental, model-checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.embeddings import MiniLMEmbedding
from assistant.errors import EmbeddingMismatchError, StoreError
from assistant.ingest import Ingester, bundled_corpus
from assistant.pipeline import Assistant, open_store
from assistant.store import Store
from tests.helpers.cli import run
from tests.helpers.settings import make_settings


def ingester(store_path: Path, embed: MiniLMEmbedding) -> Ingester:
    settings = make_settings(store_path)
    return Ingester(open_store(settings, for_writing=True), embed, settings.chunking)


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_reingest_adds_nothing_and_duplicates_nothing(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    first = ingester(tmp_path / "s", embed).ingest([bundled_corpus()])
    assert (first.added, first.updated, first.unchanged, first.bad) == (10, 0, 0, 0)
    chunks = ingester(tmp_path / "s", embed).store.count()
    again = ingester(tmp_path / "s", embed).ingest([bundled_corpus(), bundled_corpus()])
    assert (again.added, again.updated, again.unchanged, again.duplicates) == (0, 0, 10, 10)
    assert again.summary() == "added 0, updated 0, unchanged 10, bad 0, repeated 10"
    store = ingester(tmp_path / "s", embed).store
    assert (store.paper_count(), store.count()) == (10, chunks)


def test_changed_abstract_is_updated_and_stale_chunks_removed(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    long_text = " ".join(f"Sentence number {i} about sparse attention kernels." for i in range(60))
    record = {"id": "2501.00001v1", "abstract": long_text, "title": "Sparse kernels", "categories": "cs.LG"}
    run = ingester(tmp_path / "s", embed)
    run.ingest([write_jsonl(tmp_path / "a.jsonl", [record])])
    assert run.store.count() > 2
    record |= {"id": "2501.00001v2", "abstract": "A short new abstract about retrieval."}
    report = run.ingest([write_jsonl(tmp_path / "b.jsonl", [record])])
    assert (report.added, report.updated) == (0, 1)
    assert (run.store.paper_count(), run.store.count()) == (1, 1)
    passages = Assistant(make_settings(tmp_path / "s"), embed_model=embed).retrieve("retrieval")
    assert passages[0].text == "A short new abstract about retrieval."


def test_bad_records_are_counted_and_the_rest_ingests(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"id": "2501.00001", "abstract": "Fine."}\n{oops\n{"id": "2501.00002"}\n', encoding="utf-8"
    )
    warnings: list[str] = []
    report = ingester(tmp_path / "s", embed).ingest([path, tmp_path / "missing.jsonl"], warn=warnings.append)
    assert (report.added, report.bad, len(report.failed_files)) == (1, 2, 1)
    assert warnings[0].startswith(f"{path}:2: broken JSON")
    assert "missing.jsonl: no such file" in warnings[-1]
    assert "unreadable files 1" in report.summary()


def test_store_built_by_another_model_is_refused(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    Store(tmp_path / "s", "arxiv_abstracts", "some-other-model", create=True)
    with pytest.raises(EmbeddingMismatchError, match="some-other-model"):
        Assistant(make_settings(tmp_path / "s"), embed_model=embed)
    # Refusing changed nothing: the store still says which model built it.
    assert Store(tmp_path / "s", "arxiv_abstracts", "some-other-model", create=False).count() == 0


def test_missing_store_path_is_an_error_for_queries(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Assistant(make_settings(tmp_path / "nowhere"), embed_model=embed)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.slow
def test_a_query_never_turns_a_folder_into_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = run("ask", "What is AdaScale SGD?", "--store", str(empty))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [
        f"assistant: error: {empty} holds no store (no chroma.sqlite3); build one there with "
        f"`assistant ingest --store {empty} FILE`, or give the folder of an existing store"
    ]
    assert list(empty.iterdir()) == []  # nothing written: no database, no bundled abstracts


def test_an_empty_store_other_than_the_default_is_not_seeded(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    # An ingest whose only record is bad makes the store and stores nothing in it.
    report = ingester(tmp_path / "s", embed).ingest(
        [write_jsonl(tmp_path / "bad.jsonl", [{"id": "2501.00001"}])]
    )
    assert (report.added, report.bad) == (0, 1)
    bot = Assistant(make_settings(tmp_path / "s"), embed_model=embed)
    with pytest.raises(StoreError, match=r"is empty: add papers with `assistant ingest FILE` --store .*/s$"):
        bot.ask("What is AdaScale SGD?")
    assert bot.store.count() == 0


def test_store_path_that_is_a_file(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        ingester(tmp_path / "file", embed)


def test_chunk_metadata(seed_store: Path) -> None:
    store = Store(seed_store, "arxiv_abstracts", "all-MiniLM-L6-v2-onnx-int8", create=False)
    meta = store._collection.get(ids=["2005.04118#0"], include=["metadatas"])["metadatas"][0]
    assert meta["arxiv_id"] == "2005.04118"
    assert meta["date"] == 20200508
    assert meta["chunk"] == 0
    assert meta["journal_ref"].startswith("Association for Computational Linguistics")
