"""Readers, one per input format, each yielding `Paper`s and `BadRecord`s; format detection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from assistant.errors import InputError, SourceError
from assistant.schema import BadRecord, Paper
from assistant.sources.kaggle import read_kaggle
from assistant.sources.seed import read_seed
from assistant.sources.textio import head

Reader = Callable[[Path], Iterator[Paper | BadRecord]]
READERS: dict[str, Reader] = {"seed": read_seed, "kaggle": read_kaggle}
FORMATS = ("auto", *READERS)


def detect_format(path: Path) -> str:
    """Name the format of `path` from its content (JSON lines, XML or the seed listing)."""
    start = head(path).lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"{"):
        return "kaggle"
    if start.startswith(b"<"):
        raise SourceError(
            f"{path}: looks like XML (arXiv API or OAI-PMH), which this version cannot read yet; "
            "convert it to Kaggle JSON lines"
        )
    if not start:
        raise SourceError(f"{path}: the file is empty")
    return "seed"


def read_papers(path: Path, fmt: str = "auto") -> Iterator[Paper | BadRecord]:
    """Yield the records of one file in format `fmt` (or the detected one)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    name = detect_format(path) if fmt == "auto" else fmt
    return READERS[name](path)
