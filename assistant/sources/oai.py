"""Reader for OAI-PMH `ListRecords` responses in the arXivRaw, arXiv and oai_dc metadata formats."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from assistant.schema import BadRecord, Paper
from assistant.sources.ids import normalize_id
from assistant.sources.textio import clean
from assistant.sources.xmlstream import (
    PageInfo,
    child,
    children,
    elements,
    file_text,
    integer,
    iso_date,
    local,
    text,
)

_OAI_ID = re.compile(r"^oai:arXiv\.org:", re.IGNORECASE)
_AUTHOR_SPLIT = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")
_COMMENT = re.compile(r"^Comment:\s*", re.IGNORECASE)
_ET_AL = re.compile(r"(?:^|\s+)et\.? al\.?$", re.IGNORECASE)  # "A. Adare, et al": not a name


def _drop_parentheses(line: str) -> str:
    """Replace each parenthesised part, nested ones whole, by a space; unmatched parentheses stay."""
    # One pass with a stack: removing the innermost parentheses pass by pass took quadratic time
    # on a long run of "((((" in a huge author field.
    out: list[str] = []
    opened: list[int] = []  # where in `out` each open "(" is
    for char in line:
        if char == "(":
            opened.append(len(out))
        elif char == ")" and opened:
            del out[opened.pop() :]
            char = " "
        out.append(char)
    return "".join(out)


def _names(raw: str | None) -> tuple[str, ...]:
    """Split an arXiv author line ("A (Inst), B and C (Inst (Dept))") into names, affiliations dropped."""
    # Spaces collapsed before splitting: on runs of spaces the split patterns backtrack quadratically.
    line = clean(_drop_parentheses(raw or ""))
    return tuple(name for part in _AUTHOR_SPLIT.split(line) if (name := clean(_ET_AL.sub("", part))))


def _paper(raw_id: str | None, abstract: str | None, **fields: Any) -> Paper | str:
    arxiv_id = normalize_id(_OAI_ID.sub("", raw_id or ""))
    if not arxiv_id:  # also "oai:arXiv.org:" alone
        return "a record with no identifier"
    if not abstract:
        return f"{arxiv_id}: no abstract"
    return Paper(arxiv_id=arxiv_id, abstract=abstract, **fields)


def _first_version_date(body: Element) -> str | None:
    # Versions -> dates: the paper's date is when v1 was submitted (RFC 2822, e.g. "Wed, 23 Jan 2008").
    versions = children(body, "version")
    first = next((v for v in versions if v.get("version") == "v1"), versions[0] if versions else None)
    try:
        return email.utils.parsedate_to_datetime(text(first, "date") or "").date().isoformat()
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year or zone out of range
        return None


def _arxiv_raw(body: Element, fallback_id: str | None) -> Paper | str:
    return _paper(
        text(body, "id") or fallback_id,
        text(body, "abstract"),
        title=text(body, "title"),
        authors=_names(text(body, "authors")),
        categories=tuple((text(body, "categories") or "").split()),
        date=_first_version_date(body),
        comment=text(body, "comments"),
        journal_ref=text(body, "journal-ref"),
        doi=text(body, "doi"),
    )


def _arxiv(body: Element, fallback_id: str | None) -> Paper | str:
    authors = child(body, "authors")
    names = [
        " ".join(part for field in ("forenames", "keyname", "suffix") if (part := text(author, field)))
        for author in (children(authors, "author") if authors is not None else [])
    ]
    return _paper(
        text(body, "id") or fallback_id,
        text(body, "abstract"),
        title=text(body, "title"),
        authors=tuple(name for name in names if name),
        categories=tuple((text(body, "categories") or "").split()),
        date=iso_date(text(body, "created")),
        comment=text(body, "comments"),
        journal_ref=text(body, "journal-ref"),
        doi=text(body, "doi"),
    )


def _dublin_core(body: Element, fallback_id: str | None) -> Paper | str:
    # Simple Dublin Core packs several fields into repeated elements: the abstract and a
    # "Comment: ..." line are both <description>s; the abs URL, "doi:..." and the journal
    # reference are all <identifier>s. Its <subject>s are names, not category codes: not kept.
    descriptions = [d for e in children(body, "description") if (d := text(e))]
    comments = [_COMMENT.sub("", d) for d in descriptions if _COMMENT.match(d)]
    identifiers = [i for e in children(body, "identifier") if (i := text(e))]
    urls = [i for i in identifiers if "arxiv.org/abs/" in i.lower()]
    dois = [i[4:] for i in identifiers if i.lower().startswith("doi:")]
    others = [i for i in identifiers if i not in urls and not i.lower().startswith("doi:")]
    creators = [c for e in children(body, "creator") if (c := text(e))]
    return _paper(
        urls[0] if urls else fallback_id,
        next((d for d in descriptions if not _COMMENT.match(d)), None),
        title=text(body, "title"),
        authors=tuple(" ".join(reversed(c.split(", ", 1))) for c in creators),
        date=iso_date(text(body, "date")),
        comment=comments[0] if comments else None,
        journal_ref=others[0] if others else None,
        doi=dois[0] if dois else None,
    )


_FORMATS: dict[str, Callable[[Element, str | None], Paper | str]] = {
    "arXivRaw": _arxiv_raw,
    "arXiv": _arxiv,
    "dc": _dublin_core,
}


def parse_record(record: Element) -> Paper | str | None:
    """Return the paper in one `<record>`, what is wrong with it, or None for a deleted paper."""
    header = child(record, "header")
    if header is not None and header.get("status") == "deleted":
        return None
    identifier = text(header, "identifier")
    metadata = child(record, "metadata")
    body = next(iter(metadata), None) if metadata is not None else None
    if body is None:
        return f"{identifier or 'a record'}: no <metadata>"
    read = _FORMATS.get(local(body.tag))
    if read is None:
        return f"metadata format <{local(body.tag)}> is not supported; harvest arXivRaw, arXiv or oai_dc"
    return read(body, identifier)


def parse_oai(
    chunks: Iterable[str | bytes], source: str, info: PageInfo | None = None
) -> Iterator[Paper | BadRecord]:
    """Yield the papers of one OAI-PMH response; its resumptionToken and any error go into `info`."""
    info = PageInfo() if info is None else info
    for line, element in elements(chunks, source, "OAI-PMH", "an OAI-PMH response", depth=2):
        name = local(element.tag)
        if name == "record":
            paper = parse_record(element)
            if paper is not None:
                yield paper if isinstance(paper, Paper) else BadRecord(source, line, paper)
        elif name == "resumptionToken":
            info.token = text(element)
            info.total = integer(element.get("completeListSize"))
        elif name == "error" and element.get("code") != "noRecordsMatch":  # no match is an empty list
            info.error_code = clean(element.get("code", ""))  # "&#10;" would break the one-line report
            info.error = text(element) or info.error_code
            yield BadRecord(source, line, f"the OAI-PMH service answered {info.error_code}: {info.error}")


def read_oai(path: Path) -> Iterator[Paper | BadRecord]:
    """Yield the papers of a saved OAI-PMH ListRecords response (plain or gzip), streamed."""
    return parse_oai(file_text(path), str(path))
