"""The keyword index as an ingest grows it: in bounded memory, whatever the store's size.

A question's catch-up (`live.catch_up`) holds every segment in memory, which a serving process does
anyway. An ingest must not: at 2.7M papers the index is ~19 segments of 250,000 chunks. Here only
the chunks written since the saved manifest are read (the store's change feed), in runs of at most
`SEGMENT_CHUNKS`; each run becomes a segment that is saved at once and merged only with the newest
saved segments while they are not much bigger (loaded one at a time). Memory is about two
segments; time is proportional to what was written (each chunk is re-indexed by a merge at most
log2(SEGMENT_CHUNKS / run) times).
"""

from __future__ import annotations

from assistant.store import Store
from assistant.store.keyword import segments as building
from assistant.store.keyword.files import Files, Manifest
from assistant.store.keyword.live import SEGMENT_CHUNKS, merged
from assistant.store.keyword.segments import Segment


def append(store: Store, *, progress: bool = False) -> int:
    """Add what was written since the saved index as saved segments; return how many chunks were read.

    A store with no index of its own (none saved, another store's, or one ahead of the store) is
    indexed whole, also a run at a time. Raises `StoreError` if the index cannot be saved.
    """
    files = Files(store.path, store.bm25)
    with files.locked():
        manifest = files.read()
        now = store.generation()  # read first: chunks written meanwhile come with the next call
        ours = manifest is not None and manifest.collection == store.identity
        if manifest is not None and ours and manifest.generation <= now:
            names, pages = list(manifest.segments), store.changed_since(manifest.generation)
        else:
            names, pages = [], store.scan()
        read = 0
        for run in building.parts(pages, SEGMENT_CHUNKS):
            built = building.build_pages(run, progress=progress, params=store.bm25)
            if built is not None:
                read += len(built.corpus)
                names = _add(files, store, names, Segment(built))
        files.save(Manifest(store.identity, now, tuple(names)), [])
    return read


def _add(files: Files, store: Store, names: list[str], fresh: Segment) -> list[str]:
    """Merge `fresh` into the newest saved segments while they are not much bigger, save it; new names."""
    names, tail = list(names), [fresh]
    while names and tail:
        older = files.load(names[-1])
        if older is None:  # damaged: left for `assistant doctor --fix` to rebuild, never merged into
            break
        combined = merged(store, [older, *tail])
        if len(combined) == 2 and combined[0] is older:
            break  # not merged: the older one stays as it is
        names.pop()
        tail = combined
    files.save_segments(tail)
    return names + [segment.name for segment in tail]
