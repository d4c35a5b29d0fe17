"""Reader for the Kaggle `arxiv-metadata-oai-snapshot` JSON-lines form, streamed."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.schema import BadRecord, Paper
from assistant.sources.ids import normalize_id
from assistant.sources.textio import clean, lines

_AUTHOR_SPLIT = re.compile(r",\s*|\s+and\s+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(value: str) -> str:
    # A JSON escape like "\ud800" without its pair decodes to a lone surrogate, which no UTF-8
    # encoder takes (the tokenizer and Chroma fail on it later): make it U+FFFD like a bad byte.
    return clean(_SURROGATE.sub("\ufffd", value))


def _text(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    return _clean(value) or None if isinstance(value, str) else None


def _authors(record: dict[str, Any]) -> tuple[str, ...]:
    parsed = record.get("authors_parsed")
    if isinstance(parsed, list) and parsed:
        names = []
        for parts in parsed:
            if isinstance(parts, list) and parts and all(isinstance(p, str) for p in parts):
                last, first, *suffix = parts + [""]
                names.append(_clean(" ".join([first, last, *suffix])))
        if names:
            return tuple(n for n in names if n)
    raw = _text(record, "authors") or ""
    return tuple(name for name in _AUTHOR_SPLIT.split(raw) if name)


def _date(record: dict[str, Any]) -> str | None:
    versions = record.get("versions")
    if isinstance(versions, list) and versions and isinstance(versions[0], dict):
        created = versions[0].get("created")
        if isinstance(created, str):
            try:
                return email.utils.parsedate_to_datetime(created).date().isoformat()
            except (TypeError, ValueError, OverflowError):  # OverflowError: a year or zone out of range
                pass
    update = record.get("update_date")
    if isinstance(update, str):
        try:
            return dt.date.fromisoformat(update.strip()).isoformat()
        except ValueError:
            return None
    return None


def parse_record(record: Any) -> Paper | str:
    """Return the `Paper` in one decoded Kaggle record, or what is wrong with it."""
    if not isinstance(record, dict):
        return "not a JSON object"
    raw_id = record.get("id")
    # Cleaned like every other field: an id spanning lines would break the one-line reports.
    arxiv_id = normalize_id(_clean(str(raw_id))) if isinstance(raw_id, str | int) else ""
    if not arxiv_id or isinstance(raw_id, bool):  # "arXiv:" alone normalises to nothing
        return "no 'id' field"
    abstract = _text(record, "abstract")
    if not abstract:
        return f"{arxiv_id}: no 'abstract' text"
    categories = record.get("categories")
    return Paper(
        arxiv_id=arxiv_id,
        abstract=abstract,
        title=_text(record, "title"),
        authors=_authors(record),
        categories=tuple(_clean(categories).split()) if isinstance(categories, str) else (),
        date=_date(record),
        comment=_text(record, "comments"),
        journal_ref=_text(record, "journal-ref"),
        doi=_text(record, "doi"),
    )


def read_kaggle(path: Path) -> Iterator[Paper | BadRecord]:
    """Yield the papers of a Kaggle JSON-lines file (plain or gzip), one line at a time."""
    source = str(path)
    for number, text, problem in lines(path):
        if text is None:
            yield BadRecord(source, number, problem)
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except RecursionError:
            yield BadRecord(source, number, "JSON nested too deeply")
            continue
        except json.JSONDecodeError as exc:
            yield BadRecord(source, number, f"broken JSON ({exc.msg} at column {exc.colno})")
            continue
        except ValueError:  # not a JSONDecodeError: an integer longer than Python converts (4,300 digits)
            yield BadRecord(source, number, "a number too long to read")
            continue
        paper = parse_record(record)
        yield paper if isinstance(paper, Paper) else BadRecord(source, number, paper)
