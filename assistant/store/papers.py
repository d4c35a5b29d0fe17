"""Stored papers: a paper's record (metadata and whole abstract) and its vector, read back from its chunks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from assistant.errors import InputError
from assistant.schema import Paper, Passage
from assistant.sources.ids import is_arxiv_id, normalize_id
from assistant.store import Store
from assistant.store.records import paper_from_metadata

# Chunks of one abstract overlap by whole sentence pieces (`chunking.overlap_tokens`); an overlap is
# trusted when it starts on a word or is at least this long (a sentence piece may start at "}" or
# "."), so that two chunks that merely end and start alike are not merged.
_SURE_OVERLAP = 20


def check_id(raw: Any) -> str:
    """Return `raw` as a version-less arXiv id, or raise `InputError` naming what is wrong with it."""
    arxiv_id = normalize_id(raw) if isinstance(raw, str) else ""
    if not is_arxiv_id(arxiv_id):
        raise InputError(
            f"{raw!r} is not an arXiv id; write it like 2005.04118, arXiv:2005.04118v2 or hep-th/9901001"
        )
    return arxiv_id


def _chunks(store: Store, arxiv_id: str, *, embeddings: bool) -> list[dict[str, Any]]:
    """Return the stored chunks of `arxiv_id` in order, or raise `InputError` if it is not stored."""
    found = store.fingerprints([arxiv_id])
    if arxiv_id not in found:
        raise InputError(
            f"arXiv:{arxiv_id} is not in the store {store.where}; add it with "
            f"`assistant ingest --arxiv-ids {arxiv_id}` (or ingest a file that lists it)"
        )
    ids = [f"{arxiv_id}#{i}" for i in range(found[arxiv_id][1])]
    records = store.get_chunks(ids, embeddings=embeddings)
    return [records[i] for i in ids if i in records]


def join_chunks(texts: Sequence[str]) -> str:
    """Rebuild an abstract from its overlapping chunks (each overlap kept once)."""
    whole = texts[0] if texts else ""
    for text in texts[1:]:
        overlap = 0
        for k in range(min(len(whole), len(text)), 0, -1):
            if whole.endswith(text[:k]) and (k >= _SURE_OVERLAP or k == len(whole) or whole[-k - 1] == " "):
                overlap = k
                break
        whole = whole + text[overlap:] if overlap else f"{whole} {text}"
    return whole


def stored_paper(store: Store, raw_id: str) -> Paper:
    """Return the stored record of a paper: its metadata and whole abstract.

    An id that is not arXiv's form is looked up as given when the store holds it (a corpus with ids
    of its own, such as SciFact's); otherwise it is the usual one-line error.
    """
    given = normalize_id(raw_id) if isinstance(raw_id, str) else ""
    arxiv_id = given if given and not is_arxiv_id(given) and store.fingerprints([given]) else check_id(raw_id)
    chunks = _chunks(store, arxiv_id, embeddings=False)
    return paper_from_metadata(chunks[0]["metadata"], join_chunks([c["document"] for c in chunks]))


def stored_passage(store: Store, raw_id: str, score: float = 0.0) -> Passage:
    """Return a stored paper as one passage: its whole abstract and its first chunk's metadata."""
    arxiv_id = check_id(raw_id)
    chunks = _chunks(store, arxiv_id, embeddings=False)
    meta = dict(chunks[0]["metadata"])
    return Passage(
        arxiv_id=arxiv_id,
        title=str(meta.get("title") or "") or None,
        score=score,
        text=join_chunks([c["document"] for c in chunks]),
        metadata=meta,
    )


def paper_vector(store: Store, raw_id: str) -> tuple[str, np.ndarray]:
    """Return a stored paper's id and vector: the mean of its chunks' stored vectors, unit length."""
    arxiv_id = check_id(raw_id)
    vectors = np.asarray(
        [c["embedding"] for c in _chunks(store, arxiv_id, embeddings=True)], dtype=np.float32
    )
    mean = vectors.mean(axis=0)
    return arxiv_id, mean / (np.linalg.norm(mean) or 1.0)


def passage_record(passage: Passage) -> dict[str, Any]:
    """Return a retrieved paper as JSON: id, title, authors, date, categories, score and passage."""
    paper = paper_from_metadata({**passage.metadata, "arxiv_id": passage.arxiv_id}, passage.text)
    return {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "authors": list(paper.authors),
        "date": paper.date,
        "categories": list(paper.categories),
        "score": passage.score,
        "text": passage.text,
    }
