"""The keyword index as questions see it: segments kept up with the store, merged in the background.

The index is a list of segments, oldest first. Chunks written since the last question (the store's
change feed, `Store.changed_since`) become a new small segment, searched beside the others: a change
costs work in proportion to it, not to the store. Small segments are merged into bigger ones in a
background thread (each merge re-reads its chunks, so deleted ones drop out) and the result is saved
for other processes; questions keep using the segments they have meanwhile.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assistant.errors import AssistantError, StoreError
from assistant.store import Store
from assistant.store.keyword import segments as building
from assistant.store.keyword.files import Files, Manifest
from assistant.store.keyword.segments import Segment

# Largest segment, in chunks (~1.7 per paper): bounds the memory one build or merge needs.
SEGMENT_CHUNKS = 250_000
# The newest segment is merged into the one before it once that one is at most this many times
# its size: segments grow like a binary counter, so each chunk is re-indexed a few times at most.
MERGE_RATIO = 2
# A segment's scores are recomputed with the whole index's statistics once the index has grown or
# shrunk by this share since they were last (for a big segment, ~0.1 s per 100k chunks).
RESCALE_AFTER = 0.05
# After a failed background merge, the index tries again after this long.
RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Snapshot:
    """The segments as one index, at one value of the store's change counter; never changed."""

    generation: int
    segments: tuple[Segment, ...] = ()
    views: tuple[Any, ...] = ()  # each segment's bm25s index, scored with the whole index's statistics
    scaled_for: tuple[int, ...] = ()  # the number of chunks each view's scores assume
    live: tuple[np.ndarray, ...] = ()  # per segment: 1 for entries no newer segment holds again
    corpus: list[dict[str, Any]] = field(default_factory=list)  # every segment's catalog, in order

    @classmethod
    def of(cls, segments: list[Segment], generation: int, previous: Snapshot | None = None) -> Snapshot:
        """Score the segments together (reusing `previous`'s scores if still close); mark replaced entries."""
        n_docs = sum(s.n_docs for s in segments)
        df: Counter[str] = Counter()
        for segment in segments:
            df.update(segment.df)
        before: dict[Segment, tuple[Any, int]] = {}
        if previous is not None:
            scores = zip(previous.views, previous.scaled_for, strict=True)
            before = dict(zip(previous.segments, scores, strict=True))
        views, scaled_for = [], []
        for segment in segments:
            view, scaled = before.get(segment, (None, 0))
            if view is None or abs(n_docs - scaled) > RESCALE_AFTER * scaled:
                view, scaled = segment.scored(n_docs, df), n_docs
            views.append(view)
            scaled_for.append(scaled)
        live: list[np.ndarray] = []
        newer: set[str] = set()
        for age, segment in enumerate(reversed(segments)):
            kept = (i not in newer for i in segment.ids)
            live.append(np.fromiter(kept, dtype=np.int8, count=segment.n_docs))
            if age < len(segments) - 1:  # the oldest segment's ids shadow nothing
                newer.update(segment.ids)
        corpus = [entry for s in segments for entry in s.bm25.corpus]
        return cls(
            generation, tuple(segments), tuple(views), tuple(scaled_for), tuple(reversed(live)), corpus
        )

    def live_ids(self) -> set[str]:
        """Return the chunk ids the index finds (each once, from the newest segment holding it)."""
        pairs = zip(self.segments, self.live, strict=True)
        return {i for s, keep in pairs for i, k in zip(s.ids, keep, strict=True) if k}


def catch_up(
    store: Store,
    current: Snapshot | None,
    *,
    rebuild: bool = False,
    must_save: bool = False,
    progress: bool = False,
) -> Snapshot:
    """Bring `current` (None: the index on disk) up to the store's change counter, merge, save if possible.

    With `rebuild`, index the whole store afresh. `must_save`: a failure to save raises `StoreError`
    (an ingest says so); otherwise the index is kept in memory only (a read-only store, say).
    """
    files = Files(store.path, store.bm25)
    with files.locked() as writable:
        segments, generation = (None, -1) if rebuild else _start(files, store, current)
        now = store.generation()  # read first: chunks written meanwhile come with the next catch-up
        if segments is None:
            runs = building.parts(store.scan(), SEGMENT_CHUNKS)
            segments = [
                Segment(b)
                for run in runs
                if (b := building.build_pages(run, progress=progress, params=store.bm25))
            ]
        else:
            segments = merged(store, _with_changes(store, segments, generation, now))
        if writable or must_save:
            save(files, store, Snapshot(now, tuple(segments)), must_save=must_save)
    return Snapshot.of(segments, now, current)


def _start(files: Files, store: Store, current: Snapshot | None) -> tuple[list[Segment] | None, int]:
    """Return the newest usable segments (from memory, or from disk if another process got further)."""
    manifest = files.read()
    have = current.generation if current else -1
    ours = manifest is not None and manifest.collection == store.identity
    if manifest and ours and have < manifest.generation <= store.generation():
        known = {s.name: s for s in current.segments} if current else {}
        loaded = [s for name in manifest.segments if (s := known.get(name) or files.load(name))]
        if len(loaded) == len(manifest.segments):  # else damaged: built again below
            return loaded, manifest.generation
    if current is not None:
        return list(current.segments), current.generation
    return None, -1


def _with_changes(store: Store, segments: list[Segment], since: int, now: int) -> list[Segment]:
    """Add the chunks written after `since` (up to about `now`) as a new segment."""
    fresh = building.build_pages(store.changed_since(since), params=store.bm25) if now != since else None
    return [*segments, Segment(fresh)] if fresh else segments


def merged(store: Store, segments: list[Segment]) -> list[Segment]:
    """Merge the newest segment into the one before while that one is not much bigger (binary growth)."""
    segments = list(segments)
    while len(segments) >= 2:
        older, newer = segments[-2], segments[-1]
        if older.n_docs > MERGE_RATIO * newer.n_docs or older.n_docs + newer.n_docs > SEGMENT_CHUNKS:
            break
        # Re-read from the store: changed chunks come back as they are now, deleted ones not at all.
        ids = list(dict.fromkeys(older.ids + newer.ids))
        built = building.build_pages(store.pages(ids), params=store.bm25)
        segments[-2:] = [Segment(built)] if built else []
    return segments


def save(files: Files, store: Store, index: Snapshot, *, must_save: bool = False) -> None:
    """Save the new segments and a manifest naming them all (a failure is quiet unless `must_save`)."""
    manifest = Manifest(store.identity, index.generation, tuple(s.name for s in index.segments))
    if files.read() == manifest:
        return
    try:
        files.save(manifest, list(index.segments))
    except StoreError:
        if must_save:
            raise


class KeywordIndex:
    """One store's keyword index for a long-lived `Retrieval`: questions wait at most for a small segment."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()  # one catch-up or swap at a time
        self._merging: threading.Thread | None = None
        self._failed_at = -RETRY_SECONDS

    def snapshot(self) -> Snapshot:
        """Return the index to search now, with every chunk written before this question.

        The first call loads (or builds) the whole index. Later ones add what the store's change
        feed has since the last question as a small segment; while one question does so, others
        searching at the same moment use the index as it was.
        """
        current = self._snapshot
        if current is None:
            with self._lock:
                if self._snapshot is None:
                    self._snapshot = catch_up(self.store, None)
                return self._snapshot
        now = self.store.generation()
        if now != current.generation and self._lock.acquire(blocking=False):
            try:
                current = self._snapshot or current
                if current.generation != now:  # else another question just did it
                    segments = _with_changes(self.store, list(current.segments), current.generation, now)
                    current = self._snapshot = Snapshot.of(segments, now, current)
            finally:
                self._lock.release()
            self._merge_in_background()
        return current

    def wait(self) -> None:
        """Wait for a background merge to finish (tests and benchmarks)."""
        thread = self._merging
        if thread is not None:
            thread.join()

    def _merge_in_background(self) -> None:
        current = self._snapshot
        if current is None or (self._merging is not None and self._merging.is_alive()):
            return
        if time.monotonic() - self._failed_at < RETRY_SECONDS:
            return
        self._merging = threading.Thread(
            target=self._merge, args=(current,), name="keyword-merge", daemon=True
        )
        self._merging.start()

    def _merge(self, start: Snapshot) -> None:
        try:
            while True:  # again if questions added segments while it merged
                fewer = merged(self.store, list(start.segments))
                with self._lock:
                    latest = self._snapshot or start
                    if latest.segments[: len(start.segments)] != start.segments:
                        return  # replaced meanwhile: nothing to merge into
                    added = latest.segments[len(start.segments) :]
                    self._snapshot = Snapshot.of([*fewer, *added], latest.generation, latest)
                    start = self._snapshot
                files = Files(self.store.path, self.store.bm25)
                with files.locked() as writable:
                    if writable:
                        save(files, self.store, start)
                if not added:
                    return
        except Exception as exc:  # questions must not fail for it: they keep the segments they have
            self._failed_at = time.monotonic()
            reason = str(exc) if isinstance(exc, AssistantError) else f"{type(exc).__name__}: {exc}"
            print(
                f"assistant: merging keyword-index segments failed ({reason.splitlines()[0]})",
                file=sys.stderr,
            )


def up_to_date(store: Store) -> bool:
    """Return whether the saved index covers every change of the store (cheap: nothing is loaded)."""
    manifest = Files(store.path, store.bm25).read()
    saved = (manifest.collection, manifest.generation) if manifest else None
    return saved == (store.identity, store.generation())


def load_or_build(store: Store, *, progress: bool = False) -> Snapshot:
    """Return the index caught up with the store and saved (after an ingest); `StoreError` if it cannot be."""
    return catch_up(store, None, must_save=True, progress=progress)


def rebuild(store: Store, *, progress: bool = False) -> Snapshot:
    """Index the whole store afresh and save it (`doctor --fix`, after deleting papers)."""
    return catch_up(store, None, rebuild=True, must_save=True, progress=progress)
