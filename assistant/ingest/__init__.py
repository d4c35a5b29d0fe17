"""Ingest: read papers, skip unchanged ones, chunk, embed and upsert the rest in bounded batches.

Package `ingest`: papers into the store: the single-process driver (here), chunking (`chunking`),
the Ray driver of the same steps (`ray`) and live fetching from the arXiv API and OAI-PMH
(`fetch`). It may import the values modules, `sources`, `embeddings` and `store`.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode

from assistant.config import ChunkingSettings
from assistant.errors import AssistantError, SourceError, StoreError
from assistant.ingest.chunking import Chunker, embed_text
from assistant.schema import BadRecord, Paper
from assistant.sources import detect_format, read_papers
from assistant.sources.ids import normalize_id
from assistant.sources.textio import open_bytes
from assistant.store import Store, keyword
from assistant.store.records import content_hash

# Papers per write: bounds memory, and what a crash can lose is at most one batch of work.
BATCH_PAPERS = 256
# Papers after which a long ingest adds what it wrote to the saved keyword index (~170,000 chunks, one
# segment): the index stays close behind the store, and the ingest's last step reads at most this many.
KEYWORD_EVERY = 100_000


def bundled_corpus() -> Path:
    """Return the abstracts that ship inside the package (the default corpus)."""
    return Path(str(resources.files("assistant") / "data" / "seed_abstracts.txt"))


@dataclass
class IngestReport:
    """What one ingest did, for the summary line and for tests."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: int = 0
    duplicates: int = 0  # records of a paper seen again within the same batch
    removed: int = 0  # papers pruned because the inputs no longer list them
    failed_files: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return the one-line summary the CLI prints."""
        line = f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, bad {self.bad}"
        if self.duplicates:
            line += f", repeated {self.duplicates}"
        if self.removed:
            line += f", removed {self.removed}"
        if self.failed_files:
            line += f", unreadable files {len(self.failed_files)}"
        return line


def _records(
    paths: Iterable[Path], fmt: str, report: IngestReport, warn: Callable[[str], None]
) -> Iterator[Paper]:
    for path in paths:
        try:
            for record in read_papers(Path(path), fmt):
                if isinstance(record, BadRecord):
                    report.bad += 1
                    warn(str(record))
                else:
                    yield record
        except SourceError as exc:
            report.failed_files.append(str(path))
            warn(str(exc))


def count_records(paths: Iterable[Path]) -> int | None:
    """Count the records of JSON-lines inputs cheaply (newlines, ~1 s per 75k); None for other formats."""
    total = 0
    for path in paths:
        try:
            if detect_format(Path(path)) != "kaggle":
                return None
            with open_bytes(Path(path)) as handle:
                total += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        except (AssistantError, OSError, EOFError, zlib.error):
            return None  # the ingest itself reports the unreadable file
    return total


def batches(papers: Iterator[Paper], size: int, report: IngestReport) -> Iterator[list[Paper]]:
    """Group papers into batches of `size` distinct ids, counting repeats within a batch."""
    batch: dict[str, Paper] = {}
    for paper in papers:
        report.duplicates += paper.arxiv_id in batch
        batch[paper.arxiv_id] = paper  # a paper listed twice in one batch: the later one wins
        if len(batch) >= size:
            yield list(batch.values())
            batch = {}
    if batch:
        yield list(batch.values())


def check(store: Store, papers: list[Paper], settings: ChunkingSettings) -> tuple[list[Paper], int]:
    """Return the papers whose content hash the store does not hold yet, and how many it does."""
    known = store.fingerprints([p.arxiv_id for p in papers])
    todo = [p for p in papers if known.get(p.arxiv_id, ("",))[0] != content_hash(p, settings)]
    return todo, len(papers) - len(todo)


def embedded_nodes(chunker: Chunker, embed_model: BaseEmbedding, papers: list[Paper]) -> list[TextNode]:
    """Chunk `papers` and embed every chunk: the heavy step, the one a Ray worker runs."""
    nodes = [node for paper in papers for node in chunker.nodes(paper)]
    vectors = embed_model.get_text_embedding_batch([embed_text(n) for n in nodes]) if nodes else []
    for node, vector in zip(nodes, vectors, strict=True):
        node.embedding = vector
    return nodes


def store_nodes(store: Store, nodes: list[TextNode], report: IngestReport) -> None:
    """Write embedded chunks, each paper whole, counting it against what the store holds now.

    A paper stored meanwhile with the same hash (the same record again, still being embedded when
    it was checked) counts as unchanged; one stored with fewer or more chunks has its stale ones deleted.
    """
    firsts = {n.metadata["arxiv_id"]: n for n in nodes if n.metadata["chunk"] == 0}
    known = store.fingerprints(list(firsts))
    keep: set[str] = set()
    stale: list[str] = []
    added = updated = unchanged = 0
    for arxiv_id, first in firsts.items():
        old = known.get(arxiv_id)
        if old and old[0] == first.metadata["content_hash"]:
            unchanged += 1
            continue
        keep.add(arxiv_id)
        if old:
            updated += 1
            stale.extend(f"{arxiv_id}#{i}" for i in range(int(first.metadata["n_chunks"]), old[1]))
        else:
            added += 1
    # Chunk 0 carries the paper's content hash, so it is the commit mark: stale chunks go
    # first and chunk 0 is written last, so a run killed in between redoes the whole paper.
    store.delete_chunks(stale)
    written = [n for n in nodes if n.metadata["arxiv_id"] in keep]
    store.upsert(sorted(written, key=lambda n: n.metadata["chunk"] == 0))
    # Counted once written, so the summary of a run stopped by an error says what is stored.
    report.added += added
    report.updated += updated
    report.unchanged += unchanged


# Called with each batch once it is stored (or found unchanged): progress, the ids seen for pruning.
Done = Callable[[list[Paper]], None]


class Ingester:
    """Writes papers into a store, embedding only what is new or changed."""

    def __init__(self, store: Store, embed_model: BaseEmbedding, chunking: ChunkingSettings) -> None:
        self.store = store
        self.embed_model = embed_model
        self.chunker = Chunker(chunking)

    def write(self, papers: list[Paper], report: IngestReport) -> None:
        """Upsert one batch of papers and count what changed; safe to kill at any point."""
        todo, unchanged = check(self.store, papers, self.chunker.settings)
        store_nodes(self.store, embedded_nodes(self.chunker, self.embed_model, todo), report)
        report.unchanged += unchanged

    def write_all(
        self, stream: Iterable[list[Paper]], report: IngestReport, done: Done | None = None
    ) -> None:
        """Write batch after batch (a distributed ingester overrides this to keep many in flight)."""
        for batch in stream:
            self.write(batch, report)
            if done is not None:
                done(batch)

    def prune(self, keep: set[str]) -> int:
        """Delete every stored paper whose id is not in `keep`; return how many were deleted."""
        return self.store.delete_papers(sorted(self.store.paper_ids() - keep))

    def ingest(
        self,
        paths: Iterable[Path],
        fmt: str = "auto",
        *,
        progress: bool = False,
        prune: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> IngestReport:
        """Ingest every readable record of `paths`; with `prune`, delete stored papers they do not list."""
        paths = list(paths)
        report = IngestReport()
        warn = warn or (lambda message: print(message, file=sys.stderr))
        seen: set[str] = set()
        bar = None
        if progress:
            from tqdm import tqdm

            total = count_records(paths)
            bar = tqdm(total=total, unit=" papers", file=sys.stderr, dynamic_ncols=True, desc="indexing")

        since_keyword = 0

        def done(batch: list[Paper]) -> None:
            nonlocal since_keyword
            if prune:
                seen.update(p.arxiv_id for p in batch)
            if bar is not None:
                bar.update(len(batch))
            since_keyword += len(batch)
            if since_keyword >= KEYWORD_EVERY:  # a long ingest keeps the saved keyword index close
                since_keyword = 0
                self.refresh_keyword_index(report)

        try:
            self.write_all(batches(_records(paths, fmt, report, warn), BATCH_PAPERS, report), report, done)
            if prune:
                if report.failed_files:
                    warn("not pruning: some inputs were unreadable, their papers would be deleted")
                else:
                    report.removed = self.prune(seen)
        except StoreError as exc:
            # The summary counts the batches written before the failing one (which a re-run redoes).
            raise StoreError(f"{exc} [before the failing batch: {report.summary()}]") from None
        finally:
            if bar is not None:
                bar.close()
        # Also after a run that stopped between its writes and this (a full disk, a kill): now it is fixed.
        if report.removed or not keyword.up_to_date(self.store):
            self.refresh_keyword_index(report, progress=progress, rebuild=bool(report.removed))
        return report

    def refresh_keyword_index(
        self, report: IngestReport, *, progress: bool = False, rebuild: bool = False
    ) -> None:
        """Bring the keyword index up to date now (afresh after deletions), for every process to load."""
        try:
            (keyword.rebuild if rebuild else keyword.append)(self.store, progress=progress)
        except StoreError as exc:
            raise StoreError(
                f"{exc} [the papers are stored ({report.summary()}); only the keyword index is behind: "
                f"`assistant doctor --store {self.store.where} --fix` rebuilds it]"
            ) from None


def delete_papers(store: Store, arxiv_ids: Iterable[str]) -> int:
    """Delete papers by arXiv id (any spelling: `arXiv:2501.01234v2` too); return how many were stored."""
    deleted = store.delete_papers(sorted({normalize_id(i) for i in arxiv_ids}))
    if deleted:
        keyword.rebuild(store)  # without the deleted papers, for every process to load
    return deleted
