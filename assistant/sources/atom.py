"""Reader for arXiv API responses (Atom feeds), lenient about how the 2025 API differs from its manual."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from xml.etree.ElementTree import Element

from assistant.schema import BadRecord, Paper
from assistant.sources.ids import normalize_id
from assistant.sources.textio import clean
from assistant.sources.xmlstream import (
    PageInfo,
    children,
    elements,
    file_text,
    integer,
    iso_date,
    local,
    text,
)

# The API reports an error as a single entry whose id points here (user manual, section 3.4).
ERROR_ID = "arxiv.org/api/errors"


def _categories(entry: Element) -> tuple[str, ...]:
    # Primary category first, as arXiv lists them; real 2025 feeds drop the `scheme` attribute.
    found = children(entry, "primary_category") + children(entry, "category")
    return tuple(dict.fromkeys(term for c in found if (term := c.get("term", "").strip())))


def parse_entry(entry: Element) -> Paper | str:
    """Return the paper in one `<entry>`, or what is wrong with it."""
    arxiv_id = normalize_id(text(entry, "id") or "")
    if not arxiv_id:  # also "arXiv:" alone
        return "an <entry> with no <id>"
    abstract = text(entry, "summary")
    if not abstract:
        return f"{arxiv_id}: no <summary> text"
    return Paper(
        arxiv_id=arxiv_id,
        abstract=abstract,
        title=text(entry, "title"),
        authors=tuple(name for author in children(entry, "author") if (name := text(author, "name"))),
        categories=_categories(entry),
        date=iso_date(text(entry, "published")),
        comment=text(entry, "comment"),
        journal_ref=text(entry, "journal_ref"),
        doi=text(entry, "doi"),
    )


def _asked_ids(href: str) -> list[str]:
    """Return the ids a request link asked for, when it was an id_list request whose answer fits one page."""
    query = parse_qs(urlsplit(href).query)
    # Cleaned: a "%0A" in the link would otherwise put a line break in the report of a missing id.
    ids = [i for part in ",".join(query.get("id_list", [])).split(",") if (i := normalize_id(clean(part)))]
    start = integer(query.get("start", ["0"])[0]) or 0
    size = integer(query.get("max_results", ["10"])[0]) or 0
    return ids if not query.get("search_query") and start == 0 and len(ids) <= size else []


def parse_atom(
    chunks: Iterable[str | bytes], source: str, info: PageInfo | None = None
) -> Iterator[Paper | BadRecord]:
    """Yield the papers of one API response; an error entry, and asked-for ids it lacks, are bad records."""
    info = PageInfo() if info is None else info
    asked: tuple[int, list[str]] | None = None
    returned: set[str] = set()
    for line, element in elements(chunks, source, "feed", "an arXiv API Atom feed", depth=1):
        name = local(element.tag)
        if name == "entry" and ERROR_ID in (text(element, "id") or ""):
            info.error = text(element, "summary") or text(element, "id")
            yield BadRecord(source, line, f"the arXiv API answered with an error: {info.error}")
        elif name == "entry":
            paper = parse_entry(element)
            if isinstance(paper, Paper):
                returned.add(paper.arxiv_id)
            yield paper if isinstance(paper, Paper) else BadRecord(source, line, paper)
        elif name == "totalResults":
            info.total = integer(element.text)
        elif name == "link" and asked is None:
            asked = line, _asked_ids(element.get("href", ""))
    if asked and not info.error:
        line, ids = asked
        for missing in dict.fromkeys(i for i in ids if i not in returned):
            yield BadRecord(
                source,
                line,
                f"arXiv:{missing} was asked for but the API returned no entry for it; check the id",
            )


def read_atom(path: Path) -> Iterator[Paper | BadRecord]:
    """Yield the papers of a saved arXiv API response (plain or gzip), streamed."""
    return parse_atom(file_text(path), str(path))
