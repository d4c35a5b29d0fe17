"""Reader for the seed listing: abstract paragraphs, optional venue line, `arXiv:ID`, `Created:`."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

from assistant.schema import BadRecord, Paper
from assistant.sources.ids import normalize_id
from assistant.sources.textio import clean, lines

_ID_LINE = re.compile(r"^arXiv:\s*(\S+)(?:\s+-\s+(.+))?$", re.IGNORECASE)
_CREATED = re.compile(r"^Created:\s*(\S+)\s*$", re.IGNORECASE)
# A venue note ("ICML 2020", "Accepted to ICML 2019") is one short line; abstracts are longer.
MAX_COMMENT_CHARS = 200

Paragraph = tuple[int, list[str]]  # first line number, its lines


def _paragraphs(path: Path) -> Iterator[Paragraph | BadRecord]:
    start, current = 0, list[str]()
    for number, text, problem in lines(path):
        if text is None:
            yield BadRecord(str(path), number, problem)
            continue
        if text.strip():
            if not current:
                start = number
            current.append(text.strip())
        elif current:
            yield start, current
            current = []
    if current:
        yield start, current


def _paper(source: str, body: list[Paragraph], id_par: Paragraph) -> Paper | BadRecord:
    number, id_lines = id_par
    match = _ID_LINE.match(id_lines[0])
    if not match or not normalize_id(match.group(1)):
        return BadRecord(source, number, f"cannot read the id line {id_lines[0][:60]!r}")
    arxiv_id, journal_ref = normalize_id(match.group(1)), match.group(2)
    if not body:
        return BadRecord(source, number, f"arXiv:{arxiv_id} has no abstract above it")
    date = None
    for extra in id_lines[1:]:
        created = _CREATED.match(extra)
        if not created:
            return BadRecord(source, number, f"unexpected line after the id: {extra[:60]!r}")
        try:
            date = dt.date.fromisoformat(created.group(1)).isoformat()
        except ValueError:
            return BadRecord(source, number, f"Created date {created.group(1)!r} is not YYYY-MM-DD")
    comment = None
    last = body[-1][1]
    if len(body) > 1 and len(last) == 1 and len(last[0]) <= MAX_COMMENT_CHARS:
        comment = last[0]
        body = body[:-1]
    abstract = "\n".join(clean(" ".join(par)) for _, par in body)
    return Paper(
        arxiv_id=arxiv_id,
        abstract=abstract,
        date=date,
        comment=comment,
        journal_ref=journal_ref.strip() if journal_ref else None,
    )


def read_seed(path: Path) -> Iterator[Paper | BadRecord]:
    """Yield the papers of a seed listing, and a `BadRecord` for each block it cannot read."""
    source = str(path)
    body: list[Paragraph] = []
    for item in _paragraphs(path):
        if isinstance(item, BadRecord):
            yield item
            body = []  # the block around an undecodable line is unreliable: skip it
            continue
        number, par = item
        if _ID_LINE.match(par[0]):
            yield _paper(source, body, item)
            body = []
        elif _CREATED.match(par[0]):
            yield BadRecord(source, number, "a Created: line with no arXiv:ID line before it")
            body = []
        else:
            body.append(item)
    if body:
        yield BadRecord(source, body[0][0], "abstract text with no arXiv:ID line after it")
