"""The BM25 keyword index over the store's chunks: built with bm25s, persisted, kept in sync."""

from __future__ import annotations

import json
import sys
from array import array
from typing import Any

from llama_index.core.schema import TextNode

from assistant.store import Store

# What llama-index's BM25Retriever tokenizes with by default; we index with the same settings.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
LANGUAGE = "en"
# Kept per chunk in memory: enough to filter and to fetch the rest from Chroma, not the text.
CATALOG_KEYS = ("arxiv_id", "date", "categories", "archives", "authors")


def stemmer() -> Any:
    """Return the English Snowball stemmer BM25 uses."""
    import Stemmer

    return Stemmer.Stemmer("english")


def _light_entry(
    chunk_id: str, metadata: dict[str, Any], shared: dict[Any, Any] | None = None
) -> dict[str, Any]:
    # BM25Retriever rebuilds a node from `_node_content`; an empty-text node keeps memory small.
    # Chunks repeat values (a paper's id and authors, category lists): with `shared`, one copy each.
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


def tokenizer() -> Any:
    """Return a bm25s tokenizer that splits, drops stopwords and stems as `bm25s.tokenize` does.

    BM25Retriever tokenizes queries with `bm25s.tokenize` (same pattern, English stopwords, this
    stemmer); `allow_empty=False` when streaming keeps a chunk without tokens empty, as it does.
    """
    from bm25s.tokenization import Tokenizer

    return Tokenizer(lower=True, splitter=TOKEN_PATTERN, stopwords=LANGUAGE, stemmer=stemmer())


def build(store: Store, *, progress: bool = False) -> Any:
    """Tokenize every chunk (title line included, as embedded) and index it with bm25s.

    Memory stays bounded at any store size: chunks come a page at a time and only each chunk's
    token ids (4-byte ints, one vocabulary for all pages) and its catalog entry are kept, never the
    texts or token strings. The index equals `bm25.index(bm25s.tokenize(texts, ...))` over all texts
    (tests/test_keyword_build.py); only the numbering of the vocabulary differs.
    """
    import bm25s

    if progress:
        print(f"building the keyword index over {store.count()} chunks", file=sys.stderr)
    words = tokenizer()
    token_ids: list[array[int]] = []
    corpus: list[dict[str, Any]] = []
    for ids, documents, metadatas in store.scan():
        texts = [_text(document, metadata) for document, metadata in zip(documents, metadatas, strict=True)]
        stream = words.streaming_tokenize(texts, update_vocab=True, allow_empty=False)
        token_ids.extend(array("i", doc) for doc in stream)
        shared: dict[Any, Any] = {}  # per page: most chunks of a paper are read in the same page
        corpus.extend(_light_entry(i, metadata, shared) for i, metadata in zip(ids, metadatas, strict=True))
    vocab = words.get_vocab_dict()  # stem -> id; the word -> stem and word -> id maps are not needed
    words.reset_vocab()
    bm25 = bm25s.BM25()
    bm25.index((token_ids, vocab), show_progress=False)
    bm25.corpus = corpus
    return bm25


def _text(document: str, metadata: dict[str, Any]) -> str:
    title = metadata.get("title") or ""
    return f"{title}\n{document}" if title else document


def load_or_build(store: Store, *, progress: bool = False) -> Any:
    """Return the persisted index if it matches the store's generation; rebuild and persist it if not."""
    generation = store.generation()
    found = store.load_keyword_index()
    if found is not None and found[1] == generation:
        return found[0]
    bm25 = build(store, progress=progress)
    store.save_keyword_index(bm25, generation)
    return bm25
