"""How the store's failures read: a Chroma, SQLite or OS error becomes one `StoreError` line.

Kept apart from `store/__init__.py`, which owns the store; this only words what went wrong and what to do.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from typing import Any

from assistant.errors import StoreError


def explain(
    exc: BaseException, where: str, action: str, *, server: bool, writable: Callable[[], bool]
) -> StoreError:
    """Return the `StoreError` for `exc`, raised while trying to `action` the store at `where`."""
    if isinstance(exc, StoreError):
        return exc
    text = _short(exc)
    if server and not isinstance(exc, OSError):
        return StoreError(f"cannot {action} the Chroma server's store {where}: {text}")
    kind = _classify(exc)
    if kind in ("io", "other"):
        kind, text = _io_cause(where, text)
    if kind == "limit":
        return StoreError(
            f"{where}: {text}; raise the limit and run the same command again (what is already "
            "stored is kept)"
        )
    if kind == "full":
        return StoreError(
            f"{where}: no space left on its disk ({text}); free some space and run the same command "
            "again (what is already stored is kept)"
        )
    if kind == "read-only" or (kind == "cannot-open" and not writable()):
        todo = "remount it read-write" if _on_read_only_mount(where) else f"`chmod -R u+w {where}`"
        return StoreError(
            f"{where}: the store is read-only ({text}); Chroma writes to its folder even to read, so "
            f"make it writable ({todo}) or pass --store DIR for another folder"
        )
    doctor = f"run `assistant doctor --store {where}`"
    if kind == "damaged":
        return StoreError(f"{where}: the store is damaged ({text}); {doctor}")
    return StoreError(f"{where}: cannot {action} the store ({text}); {doctor}")


def file_todo(exc: OSError, folder: str) -> str:
    """Say what to do about a failed write of one of the store's own files."""
    if exc.errno == errno.EFBIG:
        return "raise the file size limit (`ulimit -f`) or free some space, and run the command again"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space and run the command again"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        todo = "remount it read-write" if _on_read_only_mount(folder) else f"`chmod -R u+w {folder}`"
        return f"make {folder} writable ({todo}) or pass --store DIR"
    return f"run `assistant doctor --store {folder}`"


# Less free space than this on the store's disk makes a vague write error a "disk full" one.
LOW_SPACE = 64 << 20

# What a Chroma or SQLite error says, and what it means for the user. Chroma's Rust core reports
# SQLite result codes ("(code: 13)") and OS errors ("(os error 28)") only in the message text.
_FAULTS = (
    ("full", r"\(code: 13\)|disk is full|os error (28|27|122)\b|no space left|file too large"),
    (
        "read-only",
        r"\(code: 8\)|readonly database|read-only file system|os error (30|13|1)\b|permission denied",
    ),
    ("cannot-open", r"\(code: 14\)|unable to open database file"),
    ("io", r"disk i/o error|os error 5\b|input/output error"),
    ("damaged", r"\(code: 11\)|\(code: 26\)|malformed|not a database|hnsw|pickle|error finding id"),
)
_ERRNO_KINDS = {
    errno.ENOSPC: "full",
    errno.EFBIG: "full",
    errno.EDQUOT: "full",
    errno.EROFS: "read-only",
    errno.EACCES: "read-only",
    errno.EPERM: "read-only",
}


def _io_cause(folder: str, text: str) -> tuple[str, str]:
    # SQLite and Chroma's compactor report a refused write vaguely; look for the usual causes.
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            return "limit", f"the file size limit (`ulimit -f`: {limit:,} bytes) stops it growing ({text})"
        stat = os.statvfs(folder)
    except (ImportError, OSError):
        return "other", text
    free = stat.f_bavail * stat.f_frsize
    if free < LOW_SPACE:
        return "full", f"{text}; {free:,} bytes free"
    return "other", text


def _on_read_only_mount(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _classify(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno in _ERRNO_KINDS:
        return _ERRNO_KINDS[exc.errno]
    text = str(exc).lower()
    for kind, pattern in _FAULTS:
        if re.search(pattern, text):
            return kind
    return "other"


_LAYER = re.compile(
    r"^(error executing plan|query error|database error|internal error|error returned from database):\s*",
    re.IGNORECASE,
)


def _short(exc: BaseException) -> str:
    # Chroma wraps one cause in several "Error executing plan: ..." layers; the innermost says most.
    text = " ".join(str(exc).split()) or type(exc).__name__
    while (shorter := _LAYER.sub("", text)) != text:
        text = shorter
    text = re.sub(r"\(code: \d+\)\s*", "", text)
    return ": ".join(text.split(": ")[-2:])[:300]


def _is_fault(exc: BaseException) -> bool:
    # Only what the disk, the database or the server did; a wrong argument stays a bug with a traceback.
    if isinstance(exc, OSError):
        return True
    name, module = type(exc).__name__, type(exc).__module__
    return name == "InternalError" or module.startswith(("httpx", "httpcore"))


_READS = {"get", "query", "count", "peek"}


class Guarded:
    """A Chroma collection whose failures become a `StoreError` (llama-index's retriever uses it too)."""

    def __init__(
        self, collection: Any, where: str, fault: Callable[[BaseException, str], StoreError]
    ) -> None:
        self._raw = collection
        self._where = where
        self._fault = fault

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._raw, name)
        if not callable(attribute):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attribute(*args, **kwargs)
            except Exception as exc:
                if not _is_fault(exc):
                    raise
                raise self._fault(exc, "read" if name in _READS else "write to") from None
            if name == "query" and not kwargs.get("where") and not kwargs.get("where_document"):
                self._check_found(result, int(kwargs.get("n_results", 10)))
            return result

        return guarded

    def _check_found(self, result: dict[str, Any], wanted: int) -> None:
        # A vector index whose files were lost (Chroma then starts an empty one) answers with few or
        # no hits and no error; say so instead of "no answer". Half: HNSW may miss a few near deletes.
        found = min((len(ids) for ids in result.get("ids") or [[]]), default=0)
        if found * 2 >= wanted:
            return  # enough whatever the store holds: no count (8 ms at 75k papers, every query)
        stored = self.count()
        if found * 2 >= min(wanted, stored):
            return
        raise StoreError(
            f"{self._where}: the vector index found {found} of the {min(wanted, stored)} nearest chunks "
            f"asked for, although the store holds {stored}: it is damaged; "
            f"run `assistant doctor --store {self._where}`"
        )
