"""What the store records of a paper: the metadata every chunk carries, and the paper rebuilt from it.

Chroma metadata holds only str, int, float and bool (lists of them in newer versions): dates are
stored as the integer YYYYMMDD so range filters compare them; `content_hash` lets an ingest skip
papers that did not change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from assistant.config import ChunkingSettings
from assistant.schema import Paper


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
