"""Input records made on the spot, for tests that need a few papers rather than the real 75k file."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from assistant.ingest import bundled_corpus
from assistant.schema import BadRecord, Paper
from assistant.sources import read_papers

# Subjects and what is done with them: enough different words that dense and BM25 retrieval have
# something to tell the papers apart by, and abstracts from one to several chunks long.
SUBJECTS = [
    ("graph neural networks", "message passing over molecular graphs"),
    ("speech recognition", "streaming transducers for noisy audio"),
    ("reinforcement learning", "reward shaping for robotic grasping"),
    ("machine translation", "low-resource language pairs"),
    ("image segmentation", "medical scans with few labels"),
    ("program synthesis", "large language models writing unit tests"),
    ("differential privacy", "federated training on mobile phones"),
    ("recommender systems", "session-based news recommendation"),
    ("theorem proving", "premise selection for interactive provers"),
    ("quantum circuits", "compiling variational algorithms"),
]
VERBS = ["improves", "speeds up", "stabilises", "simplifies", "scales", "evaluates"]
FINDINGS = [
    "Experiments on three public benchmarks show consistent gains over strong baselines.",
    "We release code and data to support reproducible research.",
    "An ablation study shows which components matter most.",
    "The method needs an order of magnitude less compute than prior work.",
    "We further analyse failure cases and discuss limitations of the approach.",
    "A user study with practitioners confirms the practical value of the tool.",
]


def paper_record(n: int, *, prefix: str = "2501") -> dict[str, Any]:
    """Return made-up Kaggle record number `n` (id PREFIX.NNNNN); the same `n` gives the same record."""
    rng = random.Random(n)
    subject, setting = SUBJECTS[n % len(SUBJECTS)]
    verb = VERBS[n % len(VERBS)]
    marker = f"method{n:05d}"  # a word only this paper uses
    sentences = [
        f"We study {subject} for {setting}.",
        f"Our approach, called {marker}, {verb} {subject} by a new training objective.",
        *rng.sample(FINDINGS, k=rng.randint(1, len(FINDINGS))),
    ]
    # Every fourth paper is long enough to need more than one chunk.
    sentences += [f"In detail, {marker} {verb} {subject} in setting {k}." for k in range(40 * (n % 4 == 3))]
    return {
        "id": f"{prefix}.{n:05d}",
        "title": f"{subject.capitalize()} for {setting} with {marker}",
        "authors": f"Ada Lovelace, Author {n}",
        "categories": "cs.LG cs.AI" if n % 2 else "cs.CL",
        "abstract": " ".join(sentences),
        "update_date": f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}",
    }


def write_kaggle(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as a Kaggle JSON-lines file; return its path."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def papers_file(path: Path, count: int, *, first: int = 0) -> Path:
    """Write `count` made-up papers (numbers `first`...) as a Kaggle JSON-lines file."""
    return write_kaggle(path, (paper_record(n) for n in range(first, first + count)))


def split(records: Iterable[Paper | BadRecord]) -> tuple[list[Paper], list[BadRecord]]:
    """Split a reader's output into its papers and its bad records."""
    items = list(records)
    return [r for r in items if isinstance(r, Paper)], [r for r in items if isinstance(r, BadRecord)]


CHECKLIST_TITLE = "Beyond Accuracy: Behavioral Testing of NLP models with CheckList"
CHECKLIST_AUTHORS = ["Marco Tulio Ribeiro", "Tongshuang Wu", "Carlos Guestrin", "Sameer Singh"]


def checklist_record() -> dict[str, object]:
    """The arXiv record of CheckList (2005.04118) in the Kaggle snapshot's form, abstract as bundled."""
    seed = next(p for p in read_papers(bundled_corpus(), "seed") if p.arxiv_id == "2005.04118")
    return {
        "id": "2005.04118",
        "submitter": "Marco Tulio Ribeiro",
        "authors": "Marco Tulio Ribeiro, Tongshuang Wu, Carlos Guestrin, Sameer Singh",
        "title": CHECKLIST_TITLE,
        "comments": None,
        "journal-ref": "Association for Computational Linguistics (ACL), 2020",
        "doi": None,
        "categories": "cs.CL cs.LG",
        "abstract": seed.abstract,  # type: ignore[union-attr]
        "versions": [{"version": "v1", "created": "Fri, 8 May 2020 15:48:31 GMT"}],
        "update_date": "2020-05-11",
        "authors_parsed": [[name.split()[-1], " ".join(name.split()[:-1]), ""] for name in CHECKLIST_AUTHORS],
    }
