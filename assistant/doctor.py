"""`assistant doctor`: check a store end to end, say what is wrong and how to fix it; repair what is safe.

Store faults make `Store` refuse to open, so the first checks read `chroma.sqlite3` themselves, read-only
with the standard `sqlite3` module (never through Chroma, which writes even to read). Every repair goes
through `Store` and `keyword`, and only rebuilds derived data or removes papers an ingest left half-written.
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.embeddings import spec_of, store_id
from assistant.errors import AssistantError
from assistant.store import MODEL_KEY, SCAN_PAGE, Store, keyword, writable
from assistant.store.bm25 import BM25Params
from assistant.store.folder import CHROMA_FILE, foreign, leftovers
from assistant.store.keyword.files import MANIFEST, Files

# Chroma tables a store cannot work without.
TABLES = ("collections", "collection_metadata", "segments", "embeddings", "embedding_metadata")
# Stored vectors looked up again by a real nearest-neighbour query.
PROBES = 3
# Papers embedded per second on this project's 2-core machine, idle: EmbeddingGemma-300M int8 4.4
# (../shared/MODELS.md, "EmbeddingGemma": 305 tokens per abstract, 2 onnxruntime threads), MiniLM 37.0
# (README "Measured": `make bench-ingest`, 124,841 texts in 33 min 41 s).
GEMMA_PAPERS_PER_S = 4.4
MINILM_PAPERS_PER_S = 37.0
# From this many MiniLM papers on, doctor says what the stronger model would cost: below, a
# re-ingest takes minutes and the build (~5 min, once) dominates.
ADVISE_FROM = 1_000


@dataclass
class Finding:
    """One check: what was found and, for a problem, what to do."""

    check: str
    ok: bool
    detail: str
    fix: str = ""
    fixable: bool = False  # `assistant doctor --fix` repairs it
    note: bool = False  # advice, not a check: shown as "note", never a problem


@dataclass
class Diagnosis:
    """Every check run on one store, in order; a failed check can stop the ones that need it."""

    store: str
    findings: list[Finding] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    # Filled by the checks, for messages and for `repair`.
    vector_folder: str = ""
    broken_papers: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Return whether every check passed."""
        return all(f.ok for f in self.findings)

    def ok(self, check: str, detail: str) -> None:
        """Record a passed check."""
        self.findings.append(Finding(check, True, detail))

    def problem(self, check: str, detail: str, fix: str, *, fixable: bool = False) -> None:
        """Record a failed check and what to do about it."""
        self.findings.append(Finding(check, False, detail, fix, fixable))

    def advise(self, check: str, detail: str, how: str) -> None:
        """Record advice (not a problem): what `detail` says, and `how` to act on it."""
        self.findings.append(Finding(check, True, detail, how, note=True))

    def to_dict(self) -> dict[str, Any]:
        """Return the diagnosis as JSON-ready data."""
        return {
            "store": self.store,
            "healthy": self.healthy,
            "checks": [asdict(f) for f in self.findings],
            "repaired": self.repaired,
        }

    def text(self) -> str:
        """Render the diagnosis for the terminal: one line per check, and a fix under each problem."""
        lines = [f"store {self.store}"]
        lines += [f"  fixed    {action}" for action in self.repaired]
        for f in self.findings:
            label = "note" if f.note else "ok" if f.ok else "PROBLEM"
            lines.append(f"  {label:8} {f.check}: {f.detail}")
            if f.fix:
                lines.append(f"           {'how' if f.note else 'fix'}: {f.fix}")
        problems = sum(not f.ok for f in self.findings)
        lines.append("healthy" if not problems else f"{problems} problem{'s' * (problems > 1)} found")
        return "\n".join(lines)


def diagnose(settings: Settings) -> Diagnosis:
    """Run every check that applies to the configured store, stopping where the rest cannot run."""
    where = (
        f"http://{settings.store.host}:{settings.store.port}" if _server(settings) else settings.store.path
    )
    report = Diagnosis(str(where))
    if others := foreign(Path(settings.store.path)):  # the store refuses to open such a folder
        detail = f"{settings.store.path} holds files the store did not write ({', '.join(others[:4])})"
        report.problem("folder", detail, "move them out, or give --store the folder of a store")
        return report
    if not _server(settings) and not _files(settings, report):
        return report
    try:
        store = _open(settings)
        chunks = store.count()
    except AssistantError as exc:
        detail = _plain(exc, report.store)
        if "hnsw" in detail.lower():
            detail = f"the vector index{report.vector_folder} is damaged: {detail}"
        report.problem("opens", detail, _rebuild(settings))
        return report
    report.ok("opens", f"Chroma opens it: {chunks} chunks")
    try:
        ids = _papers(store, report)
        if chunks:
            _vectors(store, ids, report, settings)
        _keyword_index(store, ids, report, settings)
    except AssistantError as exc:
        report.problem("reads", _plain(exc, report.store), _rebuild(settings))
        return report
    if (advice := reingest_advice(store.model_id, len({i.rpartition("#")[0] for i in ids}))) is not None:
        report.advise("stronger model", *advice)
    return report


def reingest_advice(model_id: str, papers: int) -> tuple[str, str] | None:
    """Say what re-ingesting a MiniLM store of `papers` with EmbeddingGemma would cost and buy.

    None for another model's store or one under `ADVISE_FROM` papers.
    """
    from assistant.embeddings.gemma import BUILD_COMMAND

    if model_id != store_id("minilm") or papers < ADVISE_FROM:
        return None
    detail = (
        f"{papers:,} papers embedded with MiniLM. EmbeddingGemma (opt-in) finds more (SciFact nDCG@10 "
        "0.784 dense against MiniLM's 0.645, ../shared/MODELS.md; LitSearch recall@5 0.721 against "
        f"0.681 fused, issue #27) but re-embedding them would take ~{_duration(papers / GEMMA_PAPERS_PER_S)}"
        f" on 2 idle cores ({GEMMA_PAPERS_PER_S:g} papers/s; MiniLM took ~"
        f"{_duration(papers / MINILM_PAPERS_PER_S)} at {MINILM_PAPERS_PER_S:g}/s), plus a one-time build "
        "(1.15 GB download, ~5 min) and ~100 ms more per question"
    )
    how = f"build it once (`{BUILD_COMMAND}`), then `assistant ingest SOURCE --config embeddinggemma`"
    return detail, how


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def repair(settings: Settings, report: Diagnosis) -> list[str]:
    """Repair what `report` marks fixable; return what was done. Run `diagnose` again to see the result."""
    done: list[str] = []
    store = _open(settings)
    if report.broken_papers:
        store.delete_papers(report.broken_papers)
        done.append(
            f"removed {len(report.broken_papers)} half-written papers ({_some(report.broken_papers)}); "
            "ingest their source again to add them back"
        )
    if any(f.fixable and not f.ok for f in report.findings):
        chunks = len(keyword.rebuild(store).live_ids())
        done.append(f"rebuilt the keyword index over {chunks} chunks")
    return done


def _open(settings: Settings) -> Store:
    """Open the configured store, with the BM25 parameters its keyword index is checked and built with."""
    bm25 = BM25Params.of(settings.retrieval)
    return Store.from_settings(settings.store, store_id(settings.embedding.model), create=False, bm25=bm25)


def _server(settings: Settings) -> bool:
    return settings.store.mode == "server"


def _rebuild(settings: Settings) -> str:
    folder = settings.store.path
    if _server(settings):
        return "check the Chroma server's log; if its data is lost, re-ingest: `assistant ingest SOURCE`"
    return f"move {folder} aside (or delete it) and re-ingest: `assistant ingest SOURCE --store {folder}`"


def _files(settings: Settings, report: Diagnosis) -> bool:
    """Check the folder and its database without Chroma; return whether Chroma can be tried next."""
    folder = Path(settings.store.path)
    database = folder / CHROMA_FILE
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        report.problem(
            "folder", f"{folder} {what}", f"build a store: `assistant ingest SOURCE --store {folder}`"
        )
        return False
    if not database.is_file():
        if others := leftovers(folder):
            detail = f"{database} is missing, but the folder holds {', '.join(others[:4])}"
            report.problem("database", detail, _rebuild(settings))
        else:
            detail = f"{folder} holds no store"
            report.problem("database", detail, f"build one: `assistant ingest SOURCE --store {folder}`")
        return False
    try:
        found = _read_database(database, settings.store.collection)
    except sqlite3.Error as exc:
        report.problem("database", f"{database} is damaged: {exc}", _rebuild(settings))
        return False
    report.ok("database", f"{database} passes SQLite's integrity check")
    if found.get("vector_segment"):
        report.vector_folder = f" ({folder / found['vector_segment']})"
    if writable(folder):
        report.ok("writable", f"{folder} can be written (Chroma needs that even to read)")
    else:
        report.problem(
            "writable",
            f"{folder} or {database.name} is read-only; Chroma cannot open it even to read",
            f"make it writable, e.g. `chmod -R u+w {folder}` (`chattr -R -i {folder}` if immutable)",
        )
        return False
    name, model = settings.store.collection, found.get(MODEL_KEY)
    if "layout" in found:
        return True
    if "collection" not in found:
        report.problem(
            "collection",
            f"no collection {name!r} in {database}",
            f"`assistant ingest SOURCE --store {folder}`, or set store.collection to the one it holds",
        )
        return False
    expected = store_id(settings.embedding.model)
    if model != expected:
        report.problem(
            "embedding model",
            f"built with {model!r}, but this assistant embeds with {expected!r}",
            f"open it with `--embedding {spec_of(str(model))}` (or embedding.model), or ingest into a new "
            f"folder: `assistant ingest SOURCE --store NEW_DIR` (or delete {folder} first)",
        )
        return False
    report.ok("embedding model", f"{model} (the one this assistant uses)")
    return True


def _read_database(database: Path, collection: str) -> dict[str, Any]:
    """Run SQLite's quick check and read the collection's row; raise `sqlite3.Error` on damage."""
    connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    try:
        verdict = [row[0] for row in connection.execute("PRAGMA quick_check")]
        if verdict != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(verdict[:3]))
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if missing := [t for t in TABLES if t not in tables]:
            raise sqlite3.DatabaseError(f"Chroma tables missing: {', '.join(missing)}")
        try:
            return _collection_row(connection, collection)
        except sqlite3.OperationalError:
            return {"layout": "unknown"}  # another Chroma version's tables: leave it to Chroma to judge
    finally:
        connection.close()


def _collection_row(connection: sqlite3.Connection, collection: str) -> dict[str, Any]:
    row = connection.execute("SELECT id FROM collections WHERE name = ?", (collection,)).fetchone()
    if row is None:
        return {}
    model = connection.execute(
        "SELECT str_value FROM collection_metadata WHERE collection_id = ? AND key = ?", (row[0], MODEL_KEY)
    ).fetchone()
    segment = connection.execute(
        "SELECT id FROM segments WHERE collection = ? AND scope = 'VECTOR'", (row[0],)
    ).fetchone()
    return {"collection": row[0], MODEL_KEY: model and model[0], "vector_segment": segment and segment[0]}


def _papers(store: Store, report: Diagnosis) -> list[str]:
    """Check that every paper is whole (chunk 0 written, as many chunks as it says); return all chunk ids."""
    ids: list[str] = []
    chunks: dict[str, set[int]] = defaultdict(set)
    declared: dict[str, int] = {}
    for page_ids, _, metadatas in store.scan():
        ids.extend(page_ids)
        for chunk_id, metadata in zip(page_ids, metadatas, strict=True):
            paper, _, number = chunk_id.rpartition("#")
            chunks[paper].add(int(number))
            if number == "0":
                declared[paper] = int(metadata.get("n_chunks", 1))
    broken = sorted(p for p, numbers in chunks.items() if numbers != set(range(declared.get(p, -1))))
    if broken:
        report.broken_papers = broken
        report.problem(
            "papers",
            f"{len(broken)} of {len(chunks)} papers are half-written (an ingest stopped mid-way): "
            + _some(broken),
            f"`assistant doctor --store {store.where} --fix` removes them; then ingest their source "
            f"again to add them back: `assistant ingest SOURCE --store {store.where}`",
            fixable=True,
        )
    else:
        report.ok("papers", f"{len(chunks)} papers, each with all its chunks")
    return ids


def _vectors(store: Store, ids: list[str], report: Diagnosis, settings: Settings) -> None:
    """Check that every chunk has a vector, and that a real query finds a stored vector's own chunk."""
    from llama_index.core.vector_stores.types import VectorStoreQuery

    vectors: dict[str, list[float]] = {}
    try:
        for start in range(0, len(ids), SCAN_PAGE):
            page = store.get_chunks(ids[start : start + SCAN_PAGE], embeddings=True)
            missing = [i for i in ids[start : start + SCAN_PAGE] if page.get(i, {}).get("embedding") is None]
            if missing:
                raise AssistantError(f"no vector for {len(missing)} chunks, e.g. {_some(missing)}")
            if not vectors:
                probes = random.Random(0).sample(sorted(page), min(PROBES, len(page)))
                vectors = {i: page[i]["embedding"] for i in probes}
        index = store.vector_store()
        for chunk_id, vector in vectors.items():
            query = VectorStoreQuery(query_embedding=list(map(float, vector)), similarity_top_k=3)
            if chunk_id not in (index.query(query).ids or []):
                raise AssistantError(f"a query with the vector of {chunk_id} does not find {chunk_id}")
    except AssistantError as exc:
        detail = f"the vector index{report.vector_folder} is damaged: {_plain(exc, store.where)}"
        report.problem("vectors", detail, _rebuild(settings))
        return
    report.ok("vectors", f"{len(ids)} chunks, each with a vector; nearest-neighbour queries find them")


def _keyword_index(store: Store, ids: list[str], report: Diagnosis, settings: Settings) -> None:
    """Check that the keyword (BM25) index exists, loads, is this store's and finds every stored chunk."""
    fix = f"`assistant doctor --store {store.where} --fix` rebuilds it from the store"
    if not ids:
        report.ok("keyword index", "the store is empty: nothing to index")
        return
    files = Files(store.path, store.bm25)
    manifest = files.read()
    where = files.folder / MANIFEST
    segments = [s for name in manifest.segments if (s := files.load(name))] if manifest else []
    if manifest is None or len(segments) != len(manifest.segments):
        what = "cannot be loaded (damaged files)" if where.exists() else "is missing"
        report.problem("keyword index", f"{where} {what}", fix, fixable=True)
        return
    if manifest.collection != store.identity:
        report.problem(
            "keyword index", f"{where} indexes another store (made before this one)", fix, fixable=True
        )
        return
    index = keyword.Snapshot.of(segments, manifest.generation)
    missing = set(ids) - index.live_ids()
    generation = store.generation()
    if manifest.generation != generation:
        detail = f"built at store generation {manifest.generation}, the store is at {generation} (stale)"
        report.problem("keyword index", detail, fix, fixable=True)
    elif missing:
        detail = f"out of step: {len(missing)} of the store's {len(ids)} chunks are not in it"
        report.problem("keyword index", detail, fix, fixable=True)
    else:
        gone = len(index.live_ids() - set(ids))
        later = f"; {gone} deleted chunks still in it go at its next merge" if gone else ""
        report.ok("keyword index", f"{len(ids)} chunks in {len(segments)} segments, up to date{later}")


def _plain(exc: AssistantError, where: str) -> str:
    # A store error names the store and ends "run doctor": here both are noise (and a circle).
    text = str(exc).split("; run `assistant doctor")[0]
    return text.removeprefix(f"{where}: ")


def _some(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")
