"""The keyword index's files in the store's folder: one folder per segment, a manifest naming them, a lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant.errors import StoreError
from assistant.store import errors as store_errors
from assistant.store.bm25 import BM25S_DEFAULTS, BM25Params
from assistant.store.folder import KEYWORD_FOLDER, OLD_KEYWORD, OLD_KEYWORD_FOLDER, old_keyword_folder
from assistant.store.keyword.segments import SEGMENT_NAME, Segment

MANIFEST = "manifest.json"
LOCK = "lock"


@dataclass(frozen=True)
class Manifest:
    """Which segments make the index, and what they cover."""

    collection: str  # the store's identity: an index left from another store is not this one's
    generation: int  # every chunk written up to this value of the store's change counter is indexed
    segments: tuple[str, ...]  # folder names, oldest first (a newer segment's chunk wins)


class Files:
    """The keyword index's folder inside one store's folder (one per choice of BM25 parameters)."""

    def __init__(self, store_folder: Path, params: BM25Params | None = None) -> None:
        self.store_folder = Path(store_folder)
        self.params = params or BM25Params()
        self.folder = self.store_folder / self.params.folder(KEYWORD_FOLDER)

    def read(self) -> Manifest | None:
        """Return the manifest, or None if there is none, it cannot be read or it was scored with other
        BM25 parameters (then the index is rebuilt: an index from before they were settings, say)."""
        try:
            data = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
            manifest = Manifest(str(data["collection"]), int(data["generation"]), tuple(data["segments"]))
            if data.get("bm25", BM25S_DEFAULTS) != self.params.label():
                return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return manifest if all(isinstance(name, str) for name in manifest.segments) else None

    def load(self, name: str) -> Segment | None:
        """Load one segment; None if its files are missing or damaged."""
        import bm25s

        try:
            bm25 = bm25s.BM25.load(str(self.folder / name), load_corpus=True, show_progress=False)
            segment = Segment(bm25, name, saved=True)
        except (OSError, ValueError, KeyError, TypeError, EOFError, IndexError):
            return None
        return segment if len(segment.ids) == segment.n_docs else None

    def save_segments(self, segments: list[Segment]) -> list[Path]:
        """Write the segments not saved yet (before a manifest names them); return their folders.

        Raises `StoreError` if they cannot be written.
        """
        written: list[Path] = []
        try:
            self.folder.mkdir(exist_ok=True)
            for segment in segments:
                if not segment.saved:
                    written.append(self.folder / segment.name)
                    segment.bm25.save(str(written[-1]), corpus=segment.bm25.corpus, show_progress=False)
        except OSError as exc:
            for path in written:  # half written: the manifest does not name them
                shutil.rmtree(path, ignore_errors=True)
            raise self._unsaved(exc) from None
        for segment in segments:
            segment.saved = True
        return written

    def _unsaved(self, exc: OSError) -> StoreError:
        todo = store_errors.file_todo(exc, str(self.store_folder))
        return StoreError(f"{self.folder}: cannot save the keyword index ({exc.strerror or exc}); {todo}")

    def save(self, manifest: Manifest, segments: list[Segment]) -> None:
        """Write the new segments, then the manifest (atomically), then drop what it no longer names."""
        written = self.save_segments(segments)
        tmp = self.folder / f"{MANIFEST}.tmp-{os.getpid()}"
        try:
            tmp.write_text(json.dumps(asdict(manifest) | {"bm25": self.params.label()}), encoding="utf-8")
            os.replace(tmp, self.folder / MANIFEST)
        except OSError as exc:
            # The old manifest still names the old, whole segments; drop what was written for the new.
            for path in written:
                shutil.rmtree(path, ignore_errors=True)
            for segment in segments:
                segment.saved = segment.saved and self.folder / segment.name not in written
            tmp.unlink(missing_ok=True)
            raise self._unsaved(exc) from None
        self._tidy(set(manifest.segments))

    def _tidy(self, keep: set[str]) -> None:
        """Drop the segments the manifest no longer names, and the index as it was before it had a folder.

        Only names this index gives are removed (a segment's, matched exactly; the old index's pointer
        and the one folder it names): never a file beside them that happens to share a prefix.
        """
        for path in self.folder.iterdir():
            if path.name not in keep and SEGMENT_NAME.fullmatch(path.name) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
        pointer = self.store_folder / OLD_KEYWORD
        try:
            named = json.loads(pointer.read_text(encoding="utf-8"))["folder"]
        except (OSError, ValueError, KeyError, TypeError):
            named = None
        # A bare name of the old shape, holding a bm25s index: never a path out of the folder.
        if (
            isinstance(named, str)
            and OLD_KEYWORD_FOLDER.fullmatch(named)
            and old_keyword_folder(self.store_folder / named)
        ):
            shutil.rmtree(self.store_folder / named, ignore_errors=True)
        pointer.unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[bool]:
        """Hold the index's lock (one process changes it at a time); yield whether the folder is writable."""
        try:
            self.folder.mkdir(exist_ok=True)
            handle: Any = open(self.folder / LOCK, "a")  # noqa: SIM115 - held for the whole block
        except OSError:
            yield False  # a read-only store: the index is caught up in memory only
            return
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
