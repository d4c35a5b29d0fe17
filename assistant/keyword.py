"""The BM25 keyword index over the store's chunks: built with bm25s, persisted, kept in sync."""

from __future__ import annotations

import json
import sys
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


def _light_entry(chunk_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
    # BM25Retriever rebuilds a node from `_node_content`; an empty-text node keeps memory small.
    entry = {key: metadata[key] for key in CATALOG_KEYS if key in metadata}
    entry["node_id"] = chunk_id
    entry["_node_content"] = json.dumps({"id_": chunk_id, "text": "", "metadata": {}})
    entry["_node_type"] = TextNode.class_name()
    return entry


def build(store: Store, *, progress: bool = False) -> Any:
    """Tokenize every chunk (title line included, as embedded) and index it with bm25s."""
    import bm25s

    texts: list[str] = []
    corpus: list[dict[str, Any]] = []
    for ids, documents, metadatas in store.scan():
        for chunk_id, document, metadata in zip(ids, documents, metadatas, strict=True):
            title = metadata.get("title") or ""
            texts.append(f"{title}\n{document}" if title else document)
            corpus.append(_light_entry(chunk_id, metadata))
    if progress:
        print(f"building the keyword index over {len(texts)} chunks", file=sys.stderr)
    tokens = bm25s.tokenize(
        texts, stopwords=LANGUAGE, stemmer=stemmer(), token_pattern=TOKEN_PATTERN, show_progress=False
    )
    bm25 = bm25s.BM25()
    bm25.index(tokens, show_progress=False)
    bm25.corpus = corpus
    return bm25


def load_or_build(store: Store, *, progress: bool = False) -> Any:
    """Return the persisted index if it matches the store's generation; rebuild and persist it if not."""
    generation = store.generation()
    found = store.load_keyword_index()
    if found is not None and found[1] == generation:
        return found[0]
    bm25 = build(store, progress=progress)
    store.save_keyword_index(bm25, generation)
    return bm25
