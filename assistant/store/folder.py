"""What a store's folder may hold: the names the store and the modules beside it write there.

Names and shapes only, no Chroma. `Store` refuses a folder that holds anything else (a user's
working folder given as `--store .`), so no clean-up can reach a file the store did not write;
`doctor` reads the same names.
"""

from __future__ import annotations

import re
from pathlib import Path

CHROMA_FILE = "chroma.sqlite3"
# What other modules keep in the store's folder beside the database; they own what is inside.
KEYWORD_FOLDER = "keyword"  # the keyword index (store/keyword/)
HARVESTS = "oai_harvests.json"  # where interrupted OAI-PMH harvests left off (ingest/fetch.py)
OLD_KEYWORD = "keyword_index.json"  # the keyword index before it had a folder; replaced on first use
# The folder that pointer named: `keyword-GENERATION-PID`, holding a bm25s index.
OLD_KEYWORD_FOLDER = re.compile(r"keyword-\d+-\d+")
_BM25S_PARAMS = "params.index.json"
# The keyword index scored with other BM25 parameters than bm25s' defaults (store/bm25.py's names).
PARAMS_KEYWORD_FOLDER = re.compile(rf"{KEYWORD_FOLDER}\.[a-z]+-k1_[0-9.e+-]+-b_[0-9.e+-]+")

# SQLite's own files beside the database: rollback journal, write-ahead log and its index.
_SQLITE = frozenset(f"{CHROMA_FILE}-{suffix}" for suffix in ("journal", "wal", "shm"))
# The temporary files of atomic writes (`path.with_suffix(".tmp-PID")`), left if a process died.
_TEMPORARY = re.compile(r"(oai_harvests|keyword_index)\.tmp-\d+")
# Chroma's vector index: one folder per segment, named by the segment's UUID.
_VECTOR_FOLDER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A checkout keeps its default ./index_store in git with these; the store never touches them.
PLACEHOLDERS = frozenset({".gitkeep", "README.md"})


def old_keyword_folder(path: Path) -> bool:
    """Whether `path` is a folder the keyword index wrote before it had a folder of its own."""
    return bool(OLD_KEYWORD_FOLDER.fullmatch(path.name)) and (path / _BM25S_PARAMS).is_file()


def written_by_store(path: Path) -> bool:
    """Whether the store (or a module keeping files beside it) writes an entry of this name and kind."""
    name = path.name
    if path.is_dir() and not path.is_symlink():
        return (
            name == KEYWORD_FOLDER
            or bool(_VECTOR_FOLDER.fullmatch(name) or PARAMS_KEYWORD_FOLDER.fullmatch(name))
            or old_keyword_folder(path)
        )
    return name in {CHROMA_FILE, HARVESTS, OLD_KEYWORD, *_SQLITE, *PLACEHOLDERS} or bool(
        _TEMPORARY.fullmatch(name)
    )


def foreign(folder: Path) -> list[str]:
    """Name, sorted, what `folder` holds that the store did not write; none for a missing folder."""
    try:
        entries = list(folder.iterdir())
    except OSError:  # missing, a file, unreadable: opening the store says so in its own words
        return []
    return sorted(entry.name for entry in entries if not written_by_store(entry))


def leftovers(folder: Path) -> list[str]:
    """Name the files of a store in `folder` other than its database: derived files, vector folders."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name in (KEYWORD_FOLDER, HARVESTS, OLD_KEYWORD)
        or old_keyword_folder(p)  # the old keyword index's folders
        or PARAMS_KEYWORD_FOLDER.fullmatch(p.name)  # indexes scored with other BM25 parameters
        or (p.is_dir() and (p / "header.bin").exists())  # an HNSW segment folder
    )
