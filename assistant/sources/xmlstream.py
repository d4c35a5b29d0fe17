"""Streaming XML for the arXiv readers: element by element, with line numbers, no DTDs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from assistant.errors import SourceError
from assistant.sources.textio import clean, lines

# Lines joined per parser call: big enough to be fast, small enough to stream huge harvests.
CHUNK_CHARS = 1 << 16


@dataclass
class PageInfo:
    """What one API or OAI-PMH response says besides its records, known once they are all read."""

    total: int | None = None  # results in the whole list (Atom totalResults, OAI completeListSize)
    token: str | None = None  # OAI-PMH resumptionToken; None when the list is complete
    error: str | None = None  # the error the service answered with, if any
    error_code: str | None = None  # OAI-PMH error code (badResumptionToken, ...)


def local(tag: str) -> str:
    """Return a tag's name without its `{namespace}`: the readers match names, not namespaces."""
    return tag.rpartition("}")[2]


def child(element: Element, name: str) -> Element | None:
    """Return the first child named `name`, whatever its namespace."""
    return next((c for c in element if local(c.tag) == name), None)


def children(element: Element, name: str) -> list[Element]:
    """Return every child named `name`, whatever its namespace."""
    return [c for c in element if local(c.tag) == name]


def text(element: Element | None, name: str | None = None) -> str | None:
    """Return the cleaned text of `element` (or of its child `name`), None when absent or blank."""
    if element is not None and name is not None:
        element = child(element, name)
    if element is None:
        return None
    return clean("".join(element.itertext())) or None


def integer(value: str | None) -> int | None:
    """Return `value` as an int, None when absent or not a number."""
    try:
        return int(value.strip()) if value else None
    except ValueError:
        return None


def iso_date(value: str | None) -> str | None:
    """Return the YYYY-MM-DD a timestamp starts with ("2004-08-18T23:13:32Z"), None if it has none."""
    try:
        return dt.date.fromisoformat(value[:10]).isoformat() if value else None
    except ValueError:
        return None


def file_text(path: Path) -> Iterator[str]:
    """Yield an XML file (plain or gzip) in chunks of whole lines; a line that is not UTF-8 stops it."""
    part: list[str] = []
    size = 0
    for number, line, problem in lines(path):
        if line is None:
            raise SourceError(f"{path}:{number}: {problem}")
        part.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield "".join(part)
            part, size = [], 0
    yield "".join(part)


def _name(raw: str) -> str:
    # expat reports namespaced names as "uri}local"; ElementTree spells them "{uri}local".
    return "{" + raw if "}" in raw else raw


def elements(
    chunks: Iterable[str | bytes], source: str, root: str, what: str, depth: int
) -> Iterator[tuple[int, Element]]:
    """Yield (start line, element) for each element 1..`depth` levels below the root, once complete.

    A yielded element is dropped from the tree, so memory stays bounded by one record. Input
    with a DOCTYPE is refused: arXiv never sends one, and its entities can expand without bound.
    """
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    builder = TreeBuilder()
    stack: list[tuple[Element, int]] = []  # open elements and the lines they start on
    done: list[tuple[int, Element]] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        element = builder.start(_name(tag), {_name(k): v for k, v in attrs.items()})
        line = parser.CurrentLineNumber
        if not stack and local(element.tag) != root:
            raise SourceError(f"{source}:{line}: <{local(element.tag)}> is not {what} (<{root}>)")
        stack.append((element, line))

    def end(tag: str) -> None:
        element, line = stack.pop()
        builder.end(element.tag)
        if 1 <= len(stack) <= depth:
            done.append((line, element))
            stack[-1][0].remove(element)

    def refuse(*_: object) -> None:
        raise SourceError(
            f"{source}:{parser.CurrentLineNumber}: has a DOCTYPE declaration, which arXiv responses "
            "never have and which can expand without bound; refusing to read it"
        )

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
            yield from done
            done.clear()
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise SourceError(
            f"{source}:{exc.lineno}: broken XML ({expat.errors.messages[exc.code]}); "
            "the records before it were read, re-download the file or response for the rest"
        ) from None
    yield from done
