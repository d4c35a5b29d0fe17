"""The keyword index as an ingest grows it (store/keyword/grow.py): only what was written is read, in runs
saved as they are built and merged with the newest saved segments, and it finds what a whole rebuild finds."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import ingest
from assistant.embeddings import MiniLMEmbedding
from assistant.ingest import Ingester, IngestReport
from assistant.pipeline import open_store
from assistant.sources import read_papers
from assistant.store import keyword
from assistant.store.keyword import grow, live
from assistant.store.keyword.files import Files
from tests.helpers.records import papers_file
from tests.helpers.settings import make_settings


def test_appending_reads_only_new_chunks_in_bounded_segments(
    tmp_path: Path, embed: MiniLMEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grow, "SEGMENT_CHUNKS", 12)  # runs of ~12 chunks...
    monkeypatch.setattr(live, "SEGMENT_CHUNKS", 40)  # ...merged up to 40
    settings = make_settings(tmp_path / "s")
    store = open_store(settings, for_writing=True)
    writer, report = Ingester(store, embed, settings.chunking), IngestReport()
    sizes = []
    for part in range(4):
        source = papers_file(tmp_path / f"{part}.jsonl", 10, first=10 * part)
        before = store.count()
        writer.write(list(read_papers(source)), report)  # type: ignore[arg-type]
        assert keyword.append(store) == store.count() - before  # the new chunks, not the store
        files = Files(store.path)
        manifest = files.read()
        assert manifest is not None and manifest.generation == store.generation()
        sizes = [s.n_docs for name in manifest.segments if (s := files.load(name))]
        assert len(sizes) == len(manifest.segments) and max(sizes) <= 40
    assert len(sizes) < store.count() / 12  # merged: fewer segments than runs
    assert keyword.append(store) == 0  # nothing written since: nothing read
    # What questions load from the saved index is what a whole rebuild finds.
    appended = keyword.catch_up(store, None).live_ids()
    assert appended == set(store._collection.get(include=[])["ids"]) == keyword.rebuild(store).live_ids()
    found = keyword.KeywordRetriever(store, keyword.catch_up(store, None), 3, None).retrieve("method00031")
    assert found[0].node.metadata["arxiv_id"] == "2501.00031"


def test_a_long_ingest_appends_to_the_index_as_it_goes(
    tmp_path: Path, embed: MiniLMEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "BATCH_PAPERS", 4)
    monkeypatch.setattr(ingest, "KEYWORD_EVERY", 8)
    generations: list[int] = []
    append = keyword.append

    def spy(store: object, **kwargs: object) -> int:
        read = append(store, **kwargs)  # type: ignore[arg-type]
        generations.append(Files(store.path).read().generation)  # type: ignore[attr-defined, union-attr]
        return read

    monkeypatch.setattr(keyword, "append", spy)
    settings = make_settings(tmp_path / "s")
    store = open_store(settings, for_writing=True)
    Ingester(store, embed, settings.chunking).ingest([papers_file(tmp_path / "in.jsonl", 20)])
    # After papers 8 and 16 during the ingest, and once at its end; each saw more of the store.
    assert len(generations) == 3 and generations == sorted(set(generations))
    assert generations[-1] == store.generation()
