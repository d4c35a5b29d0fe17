"""Opening input files: plain or gzip (by content, not name), UTF-8 decoded line by line."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from assistant.errors import SourceError

GZIP_MAGIC = b"\x1f\x8b"
_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """Collapse hard line breaks and runs of white space into single spaces."""
    return _SPACES.sub(" ", text).strip()


def open_bytes(path: Path) -> IO[bytes]:
    """Open a file for reading bytes, decompressing it if its content (not its name) is gzip."""
    try:
        handle: IO[bytes] = path.open("rb")
        if handle.read(2) == GZIP_MAGIC:
            handle.close()
            return gzip.open(path, "rb")  # type: ignore[return-value]
        handle.seek(0)
        return handle
    except IsADirectoryError:
        raise SourceError(f"{path}: is a folder; name the files inside it") from None
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file; check the path") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read it ({exc.strerror or exc}); check its permissions") from None


def head(path: Path, size: int = 4096) -> bytes:
    """Return the first `size` bytes of the (decompressed) file."""
    with open_bytes(path) as handle:
        try:
            return handle.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(f"{path}: broken gzip data ({exc}); re-download the file") from None


def lines(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """Yield (line number, text or None if not UTF-8, the decoding problem) for each line."""
    if b"\x00" in head(path):
        raise SourceError(f"{path}: binary data, or UTF-16 text; save the file as UTF-8 text or JSON lines")
    number = 0
    with open_bytes(path) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode("utf-8"), ""
                except UnicodeDecodeError as exc:
                    problem = (
                        f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                        "save the file as UTF-8"
                    )
                    yield number, None, problem
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceError(
                f"{path}:{number + 1}: the gzip data breaks off here ({exc}); "
                "the records before it were read, re-download the file for the rest"
            ) from None
