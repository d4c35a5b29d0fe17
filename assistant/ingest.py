"""Ingest: read papers, skip unchanged ones, chunk, embed and upsert the rest in bounded batches."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode

from assistant import keyword
from assistant.chunking import Chunker, content_hash, embed_text
from assistant.config import ChunkingSettings
from assistant.errors import AssistantError, SourceError, StoreError
from assistant.schema import BadRecord, Paper
from assistant.sources import detect_format, read_papers
from assistant.sources.ids import normalize_id
from assistant.sources.textio import open_bytes
from assistant.store import Store

# Papers per write: bounds memory, and what a crash can lose is at most one batch of work.
BATCH_PAPERS = 256


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


class Ingester:
    """Writes papers into a store, embedding only what is new or changed."""

    def __init__(self, store: Store, embed_model: BaseEmbedding, chunking: ChunkingSettings) -> None:
        self.store = store
        self.embed_model = embed_model
        self.chunker = Chunker(chunking)

    def write(self, papers: list[Paper], report: IngestReport) -> None:
        """Upsert one batch of papers and count what changed; safe to kill at any point."""
        known = self.store.fingerprints([p.arxiv_id for p in papers])
        nodes: list[TextNode] = []
        stale: list[str] = []
        added = updated = unchanged = 0
        for paper in papers:
            old = known.get(paper.arxiv_id)
            if old and old[0] == content_hash(paper, self.chunker.settings):
                unchanged += 1
                continue
            chunks = self.chunker.nodes(paper)
            nodes.extend(chunks)
            if old:
                updated += 1
                stale.extend(f"{paper.arxiv_id}#{i}" for i in range(len(chunks), old[1]))
            else:
                added += 1
        # Chunk 0 carries the paper's content hash, so it is the commit mark: stale chunks go
        # first and chunk 0 is written last, so a run killed in between redoes the whole paper.
        self.store.delete_chunks(stale)
        if nodes:
            nodes.sort(key=lambda n: n.metadata["chunk"] == 0)
            vectors = self.embed_model.get_text_embedding_batch([embed_text(n) for n in nodes])
            for node, vector in zip(nodes, vectors, strict=True):
                node.embedding = vector
            self.store.upsert(nodes)
        # Counted once written, so the summary of a run stopped by an error says what is stored.
        report.added += added
        report.updated += updated
        report.unchanged += unchanged

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
        try:
            for batch in batches(_records(paths, fmt, report, warn), BATCH_PAPERS, report):
                self.write(batch, report)
                if prune:
                    seen.update(p.arxiv_id for p in batch)
                if bar is not None:
                    bar.update(len(batch))
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
            (keyword.rebuild if rebuild else keyword.load_or_build)(self.store, progress=progress)
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
