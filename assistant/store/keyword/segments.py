"""One keyword-index segment: a bm25s index over a set of chunks, scored with the whole index's statistics."""

from __future__ import annotations

import copy
import json
import re
import sys
import uuid
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from llama_index.core.schema import TextNode

from assistant.store import Page
from assistant.store.bm25 import BM25Params

# What llama-index's BM25Retriever tokenizes with by default; we index with the same settings.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
LANGUAGE = "en"
# A segment's folder name, as `Segment` gives it: the clean-up removes only names of this shape.
SEGMENT_NAME = re.compile(r"seg-[0-9a-f]{12}")
# Kept per chunk in memory: enough to filter and to fetch the rest from Chroma, not the text.
CATALOG_KEYS = ("arxiv_id", "date", "categories", "archives", "authors")


def stemmer() -> Any:
    """Return the English Snowball stemmer BM25 uses."""
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenizer() -> Any:
    """Return a bm25s tokenizer that splits, drops stopwords and stems as `bm25s.tokenize` does.

    BM25Retriever tokenizes queries with `bm25s.tokenize` (same pattern, English stopwords, this
    stemmer); `allow_empty=False` when streaming keeps a chunk without tokens empty, as it does.
    """
    from bm25s.tokenization import Tokenizer

    return Tokenizer(lower=True, splitter=TOKEN_PATTERN, stopwords=LANGUAGE, stemmer=stemmer())


def light_entry(
    chunk_id: str, metadata: dict[str, Any], shared: dict[Any, Any] | None = None
) -> dict[str, Any]:
    """Return a chunk's catalog entry: what filters read, and what BM25Retriever rebuilds a node from."""
    # An empty-text node keeps memory small. Chunks repeat values (a paper's id and authors,
    # category lists): with `shared`, one copy each.
    shared = {} if shared is None else shared
    entry = {
        key: shared.setdefault((key, _hashable(metadata[key])), metadata[key])
        for key in CATALOG_KEYS
        if key in metadata
    }
    entry["node_id"] = chunk_id
    entry["_node_content"] = json.dumps({"id_": chunk_id, "text": "", "metadata": {}})
    entry["_node_type"] = TextNode.class_name()
    return entry


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def text_of(document: str, metadata: dict[str, Any]) -> str:
    """Return what BM25 indexes of a chunk: its title line (as embedded), then its text."""
    title = metadata.get("title") or ""
    return f"{title}\n{document}" if title else document


def build_pages(pages: Iterable[Page], *, progress: bool = False, params: BM25Params | None = None) -> Any:
    """Tokenize every chunk of `pages` and index them with bm25s (scored by `params`); None if there are none.

    Memory stays bounded at any size: chunks come a page at a time and only each chunk's token ids
    (4-byte ints, one vocabulary for all pages) and its catalog entry are kept, never the texts or
    token strings. The index equals `bm25.index(bm25s.tokenize(texts, ...))` over all texts
    (tests/test_keyword_build.py); only the numbering of the vocabulary differs.
    """
    import bm25s

    words = tokenizer()
    token_ids: list[array[int]] = []
    corpus: list[dict[str, Any]] = []
    for ids, documents, metadatas in pages:
        texts = [text_of(document, metadata) for document, metadata in zip(documents, metadatas, strict=True)]
        stream = words.streaming_tokenize(texts, update_vocab=True, allow_empty=False)
        token_ids.extend(array("i", doc) for doc in stream)
        shared: dict[Any, Any] = {}  # per page: most chunks of a paper are read in the same page
        corpus.extend(light_entry(i, metadata, shared) for i, metadata in zip(ids, metadatas, strict=True))
        if progress:
            print(f"\rkeyword index: {len(corpus):,} chunks tokenized", end="", file=sys.stderr, flush=True)
    if progress and corpus:
        print(file=sys.stderr)
    if not corpus:
        return None
    vocab = words.get_vocab_dict()  # stem -> id; the word -> stem and word -> id maps are not needed
    words.reset_vocab()
    params = params or BM25Params()
    bm25 = bm25s.BM25(k1=params.k1, b=params.b, method=params.method)
    bm25.index((token_ids, vocab), show_progress=False)
    bm25.corpus = corpus
    return bm25


def build(source: Any, *, progress: bool = False) -> Any:
    """Index every chunk `source.scan()` yields (a `Store`) as one bm25s index, scored as it says."""
    return build_pages(source.scan(), progress=progress, params=getattr(source, "bm25", None))


def parts(pages: Iterable[Page], size: int) -> Iterator[Iterator[Page]]:
    """Split a stream of pages into consecutive runs of about `size` chunks (whole pages), lazily."""
    stream = iter(pages)
    while (first := next(stream, None)) is not None:

        def run(page: Page | None = first) -> Iterator[Page]:
            count = 0
            while page is not None:
                yield page
                count += len(page[0])
                if count >= size:
                    return
                page = next(stream, None)

        yield run()


class Segment:
    """A bm25s index over some chunks, with what it takes to score them as part of a bigger index.

    bm25s stores each (chunk, stem) score with the segment's own idf in it; `scored` divides that
    out and multiplies the idf of the whole index back in, so hits from a 300-chunk segment and a
    100,000-chunk one compare. (Document lengths stay normalised by the segment's own average.)
    """

    def __init__(self, bm25: Any, name: str | None = None, *, saved: bool = False) -> None:
        self.bm25 = bm25
        self.name = name or f"seg-{uuid.uuid4().hex[:12]}"  # SEGMENT_NAME
        self.saved = saved
        self.ids: list[str] = [entry["node_id"] for entry in bm25.corpus]
        counts = np.diff(np.asarray(bm25.scores["indptr"]))
        # bm25s numbers its empty token "" past the matrix: it has no column.
        self._stems = {i: stem for stem, i in bm25.vocab_dict.items() if i < len(counts)}
        self.df = {stem: int(counts[i]) for i, stem in self._stems.items()}
        self._counts = counts

    @property
    def n_docs(self) -> int:
        """Return how many chunks the segment indexes."""
        return int(self.bm25.scores["num_docs"])

    def scored(self, n_docs: int, df: dict[str, int]) -> Any:
        """Return the index as a bm25s object scored with `n_docs` chunks and document frequencies `df`."""
        params = BM25Params(float(self.bm25.k1), float(self.bm25.b), str(self.bm25.method))
        factor = np.ones(len(self._counts), dtype=np.float32)
        for i, stem in self._stems.items():
            if self._counts[i]:
                own = params.idf(self.n_docs, int(self._counts[i]))
                # robertson's idf is 0 for a stem in most chunks: its scores are 0 and stay so
                factor[i] = params.idf(n_docs, df[stem]) / own if own else 0.0
        view = copy.copy(self.bm25)  # shares the matrix's indices; the scores are new, the original kept
        view.scores = {
            **self.bm25.scores,
            "data": (self.bm25.scores["data"] * np.repeat(factor, self._counts)),
        }
        return view
