"""The streamed keyword-index build equals a plain bm25s build over all texts at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import pytest

from assistant import store as store_module
from assistant.embeddings import MiniLMEmbedding
from assistant.ingest import Ingester, bundled_corpus
from assistant.pipeline import open_store
from assistant.store import Store, keyword
from assistant.store.bm25 import BM25Params
from assistant.store.keyword.segments import Segment
from tests.helpers.settings import make_settings

TOP_K = 10


def plain_build(pages: Iterator[tuple[list[str], list[str], list[dict[str, Any]]]]) -> Any:
    """Build the index the simple way: every text in one list, `bm25s.tokenize`, then `index`."""
    texts: list[str] = []
    corpus: list[dict[str, Any]] = []
    for ids, documents, metadatas in pages:
        for chunk_id, document, metadata in zip(ids, documents, metadatas, strict=True):
            title = metadata.get("title") or ""
            texts.append(f"{title}\n{document}" if title else document)
            corpus.append(keyword.light_entry(chunk_id, metadata))
    tokens = bm25s.tokenize(
        texts,
        stopwords=keyword.LANGUAGE,
        stemmer=keyword.stemmer(),
        token_pattern=keyword.TOKEN_PATTERN,
        show_progress=False,
    )
    params = BM25Params()  # the default settings' (not bm25s' own defaults)
    bm25 = bm25s.BM25(k1=params.k1, b=params.b, method=params.method)
    bm25.index(tokens, show_progress=False)
    bm25.corpus = corpus
    return bm25


def columns(bm25: Any) -> dict[str, tuple[list[int], list[float]]]:
    """Each vocabulary entry's column of the score matrix: (chunk rows, scores), whatever its number."""
    data, indices, indptr = (bm25.scores[k] for k in ("data", "indices", "indptr"))
    # bm25s numbers its empty token "" past the matrix: it has no column.
    return {
        token: (indices[indptr[i] : indptr[i + 1]].tolist(), data[indptr[i] : indptr[i + 1]].tolist())
        for token, i in bm25.vocab_dict.items()
        if i + 1 < len(indptr)
    }


def assert_same_index(streamed: Any, plain: Any) -> None:
    """The same documents, vocabulary, scores per (token, chunk) and catalog; only numbering may differ."""
    assert streamed.scores["num_docs"] == plain.scores["num_docs"]
    assert set(streamed.vocab_dict) == set(plain.vocab_dict)
    assert columns(streamed) == columns(plain)
    assert streamed.corpus == plain.corpus


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embed: MiniLMEmbedding, data_dir: Path) -> Store:
    """A real store: the bundled abstracts and the 200 real papers of the Kaggle snapshot's head."""
    settings = make_settings(tmp_path_factory.mktemp("keyword-build") / "store")
    store = open_store(settings, for_writing=True)
    head200 = data_dir / "formats" / "kaggle-snapshot-head200.jsonl"
    Ingester(store, embed, settings.chunking).ingest([bundled_corpus(), head200])
    return store


def queries(store: Store) -> list[str]:
    """200 questions from the store itself: titles, phrases from the text, and a few odd ones."""
    titles: set[str] = set()
    phrases: list[str] = []
    for _, documents, metadatas in store.scan():
        titles.update(m["title"] for m in metadatas if m.get("title"))
        phrases.extend(" ".join(d.split()[5:9]) for d in documents[::3])
    odd = ["zorblax quantum", "the of and", "a", "BM25", "Self-Instruct", "graphs graph graphing graphed"]
    picked = odd + sorted(titles)[:130] + phrases
    assert len(picked) >= 200
    return picked[:200]


def test_streamed_build_equals_a_plain_build_on_a_real_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small pages, so the vocabulary is really shared across many of them.
    monkeypatch.setattr(store_module, "SCAN_PAGE", 37)
    assert store.count() > 5 * 37
    streamed = keyword.build(store)
    plain = plain_build(store.scan())
    assert_same_index(streamed, plain)

    asked = queries(store)
    full = 0
    for question in asked:
        # As retrieve/__init__.py asks: llama-index's BM25Retriever with our stemmer and token pattern.
        hits = [
            [
                (h.node.node_id, h.score)
                for h in keyword.KeywordRetriever(store, index, TOP_K, None).retrieve(question)
            ]
            for index in (keyword.Snapshot.of([Segment(bm25)], 0) for bm25 in (streamed, plain))
        ]
        assert hits[0] == hits[1], question
        full += len(hits[0]) == TOP_K
    assert full > 150  # most questions match at least ten chunks: the comparison is not vacuous


class PagedStore:
    """Just what `keyword.build` reads: `scan()` pages of (ids, documents, metadatas)."""

    def __init__(self, texts: list[str], page: int) -> None:
        self.texts, self.page = texts, page

    def scan(self) -> Iterator[tuple[list[str], list[str], list[dict[str, Any]]]]:
        numbered = list(enumerate(self.texts))
        for start in range(0, len(numbered), self.page):
            rows = numbered[start : start + self.page]
            yield (
                [f"2501.{i:05d}#0" for i, _ in rows],
                [text for _, text in rows],
                [{"arxiv_id": f"2501.{i:05d}", "title": "Title" if i % 3 == 0 else ""} for i, _ in rows],
            )


@pytest.mark.parametrize("page", [1, 2, 5, 100])
def test_chunks_without_tokens_and_words_across_pages(page: int) -> None:
    texts = [
        "Graphs and graphing: a graph neural network.",
        "the of and to",  # only stopwords: no token, as bm25s.tokenize leaves it
        "a b c 1 2 3",  # only one-character words: no token
        "",
        "Über naïve café graphs; GRAPHED graphing",
        "Running runners run; the runner ran.",
        "x" * 50,
    ]
    streamed = keyword.build(PagedStore(texts, page))  # type: ignore[arg-type]
    plain = plain_build(PagedStore(texts, len(texts)).scan())
    assert_same_index(streamed, plain)
    assert "" in streamed.vocab_dict  # bm25s's empty token, added once by `index`
    for question in ["graph", "the", "running café", "zzz", "x" * 50]:
        tokens = bm25s.tokenize(question, stemmer=keyword.stemmer(), token_pattern=keyword.TOKEN_PATTERN)
        got = [bm25.retrieve(tokens, k=len(texts)) for bm25 in (streamed, plain)]
        assert np.array_equal(got[0].scores, got[1].scores)
        assert [d["node_id"] for d in got[0].documents[0]] == [d["node_id"] for d in got[1].documents[0]]
