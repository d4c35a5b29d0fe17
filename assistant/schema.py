"""Plain values that flow through the assistant: papers in, answers out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Paper:
    """One arXiv abstract with the metadata a reader could find for it."""

    arxiv_id: str
    abstract: str
    title: str | None = None
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    date: str | None = None  # YYYY-MM-DD of the first version, when known
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None


@dataclass(frozen=True)
class BadRecord:
    """A record a reader skipped, with where it was and what is wrong."""

    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(frozen=True)
class Passage:
    """A retrieved piece of an abstract with its relevance score."""

    arxiv_id: str
    title: str | None
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form the CLI prints."""
        return {"arxiv_id": self.arxiv_id, "title": self.title, "score": self.score, "text": self.text}


@dataclass(frozen=True)
class Answer:
    """An answer with the verified citations and the passages it rests on."""

    question: str
    text: str
    citations: list[str]
    passages: list[Passage]
    backend: str
    dropped_citations: list[str] = field(default_factory=list)
    grounded: bool = True
    warnings: list[str] = field(default_factory=list)
    proposed_citations: list[str] = field(
        default_factory=list
    )  # the ids the answerer wrote, before verification

    @property
    def answered(self) -> bool:
        """Whether the passages answered the question (a refusal cites nothing)."""
        return bool(self.citations)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form of `assistant ask --json`."""
        data = asdict(self)
        data["answer"] = data.pop("text")
        data["passages"] = [p.to_dict() for p in self.passages]
        return data
