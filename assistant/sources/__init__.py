"""Readers, one per input format, each yielding `Paper`s and `BadRecord`s; format detection.

Package `sources`: everything that turns input into `Paper`s: one reader per format (seed listing,
Kaggle JSON lines, arXiv Atom, OAI-PMH), the streaming text and XML helpers, arXiv ids (`ids`) and
the `[arXiv:ID]` citation markers written in text (`citations`). It may import only the values
modules (`schema`, `errors`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from assistant.errors import InputError, SourceError
from assistant.schema import BadRecord, Paper
from assistant.sources.atom import read_atom
from assistant.sources.kaggle import read_kaggle
from assistant.sources.oai import read_oai
from assistant.sources.seed import read_seed
from assistant.sources.textio import head

Reader = Callable[[Path], Iterator[Paper | BadRecord]]
READERS: dict[str, Reader] = {"seed": read_seed, "kaggle": read_kaggle, "atom": read_atom, "oai": read_oai}
FORMATS = ("auto", *READERS)

# Root element and namespace of each XML format: the namespace tells an Atom feed from any <feed>.
_XML_ROOTS = {
    "atom": (b"feed", b"http://www.w3.org/2005/Atom"),
    "oai": (b"OAI-PMH", b"http://www.openarchives.org/OAI/2.0/"),
}
_FIRST_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")  # skips <?xml ...?> and <!-- comments -->


def _xml_format(path: Path, start: bytes) -> str:
    match = _FIRST_TAG.search(start)
    name = match.group(1).rpartition(b":")[2] if match else b""
    for fmt, (root, namespace) in _XML_ROOTS.items():
        if name == root and namespace in start:
            return fmt
    raise SourceError(
        f"{path}: XML, but neither an arXiv API (Atom) feed nor an OAI-PMH response; "
        "save the API or OAI-PMH answer as it came, or convert the file to Kaggle JSON lines"
    )


def detect_format(path: Path) -> str:
    """Name the format of `path` from its content (JSON lines, Atom or OAI-PMH XML, the seed listing)."""
    start = head(path).lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"{"):
        return "kaggle"
    if start.startswith(b"<"):
        return _xml_format(path, start)
    if not start:
        raise SourceError(f"{path}: the file is empty")
    return "seed"


def read_papers(path: Path, fmt: str = "auto") -> Iterator[Paper | BadRecord]:
    """Yield the records of one file in format `fmt` (or the detected one)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    name = detect_format(path) if fmt == "auto" else fmt
    return READERS[name](path)
