"""Papers -> llama-index nodes: sentence-aligned chunks with the metadata filters and citations need."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import MetadataMode, TextNode

from assistant.config import ChunkingSettings
from assistant.embeddings import load_tokenizer
from assistant.schema import Paper

# Only these reach the embedding and the LLM; the rest is for filters and display.
_TEXT_KEYS = ("title",)
# How llama-index writes the title before each chunk's text (its default metadata template).
TITLE_PREFIX = "title: "


def _token_ids(text: str) -> list[int]:
    return load_tokenizer().encode(text, add_special_tokens=False).ids


def date_number(date: str | None) -> int:
    """Return a YYYY-MM-DD date as the integer YYYYMMDD that Chroma range filters compare (0 = unknown)."""
    return int(date.replace("-", "")) if date else 0


def date_text(number: object) -> str | None:
    """Return a stored YYYYMMDD date as YYYY-MM-DD, or None when it is unknown (0)."""
    value = int(number or 0)  # type: ignore[call-overload]
    return f"{value // 10000:04d}-{value // 100 % 100:02d}-{value % 100:02d}" if value else None


def content_hash(paper: Paper, settings: ChunkingSettings) -> str:
    """Hash everything that decides a paper's chunks, so unchanged papers are never re-embedded."""
    payload = json.dumps([asdict(paper), settings.model_dump()], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def paper_metadata(paper: Paper, settings: ChunkingSettings) -> dict[str, object]:
    """Return the per-paper metadata every chunk carries (Chroma takes no None and no empty list)."""
    meta: dict[str, object] = {
        "arxiv_id": paper.arxiv_id,
        "title": paper.title or "",
        "authors": "; ".join(paper.authors),
        "date": date_number(paper.date),
        "content_hash": content_hash(paper, settings),
    }
    if paper.categories:
        meta["categories"] = list(paper.categories)
        meta["primary_category"] = paper.categories[0]
        meta["archives"] = sorted({c.split(".")[0] for c in paper.categories})
    for key in ("comment", "journal_ref", "doi"):
        value = getattr(paper, key)
        if value:
            meta[key] = value
    return meta


def paper_from_metadata(meta: Mapping[str, Any], abstract: str) -> Paper:
    """Rebuild a `Paper` from the metadata `paper_metadata` made of it, with its abstract given."""
    categories = meta.get("categories") or ()
    if not isinstance(categories, list | tuple):
        categories = str(categories).split()
    return Paper(
        arxiv_id=str(meta["arxiv_id"]),
        abstract=abstract,
        title=str(meta.get("title") or "") or None,
        authors=tuple(name for name in str(meta.get("authors") or "").split("; ") if name),
        categories=tuple(categories),
        date=date_text(meta.get("date")),
        comment=meta.get("comment") or None,
        journal_ref=meta.get("journal_ref") or None,
        doi=meta.get("doi") or None,
    )


class Chunker:
    """Split abstracts into chunks that fit the embedding model, title-prefixed when known."""

    def __init__(self, settings: ChunkingSettings) -> None:
        self.settings = settings
        # Chunk sizes depend on each title's length: one splitter per size, made once.
        self._splitters: dict[int, SentenceSplitter] = {}

    def nodes(self, paper: Paper) -> list[TextNode]:
        """Return the chunks of one paper as nodes with ids `ID#0`, `ID#1`, ..."""
        meta = paper_metadata(paper, self.settings)
        title = None
        room = self.settings.chunk_tokens
        if self.settings.include_title and paper.title:
            title = fit_title(paper.title, self.settings.chunk_tokens // 2 - len(_token_ids(TITLE_PREFIX)))
            meta["title"] = title
            room -= len(_token_ids(f"{TITLE_PREFIX}{title}"))  # as llama-index's metadata-aware split counts
        texts = self._splitter(room).split_text(paper.abstract) or [paper.abstract]
        hidden = [k for k in meta if k not in _TEXT_KEYS or not title]
        return [
            TextNode(
                id_=f"{paper.arxiv_id}#{i}",
                text=text,
                metadata={**meta, "chunk": i, "n_chunks": len(texts)},
                excluded_embed_metadata_keys=[*hidden, "chunk", "n_chunks"],
                excluded_llm_metadata_keys=[*hidden, "chunk", "n_chunks"],
            )
            for i, text in enumerate(texts)
        ]

    def _splitter(self, room: int) -> SentenceSplitter:
        """Return a splitter into chunks of at most `room` word pieces.

        Not `split_text_metadata_aware`: it raises for a title longer than the chunk and prints to
        stdout when under 50 word pieces are left, which would break the ingest's summary line.
        """
        if room not in self._splitters:
            overlap = min(self.settings.overlap_tokens, room // 2)
            self._splitters[room] = SentenceSplitter(
                chunk_size=room, chunk_overlap=overlap, tokenizer=_token_ids
            )
        return self._splitters[room]


def fit_title(title: str, limit: int) -> str:
    """Return `title`, cut after its first `limit` word pieces if it is longer (a record gone wrong)."""
    encoding = load_tokenizer().encode(title, add_special_tokens=False)
    if len(encoding.ids) <= limit:
        return title
    return title[: encoding.offsets[limit - 1][1]].rstrip()


def embed_text(node: TextNode) -> str:
    """Return what the embedding model reads for a node (title line, then the chunk)."""
    return node.get_content(metadata_mode=MetadataMode.EMBED)
