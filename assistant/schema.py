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
class Evidence:
    """The sentence of a cited passage that an answer sentence rests on, and how close the two are."""

    arxiv_id: str
    sentence: str
    similarity: float


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer: its verified citations and how well the cited passages support it."""

    text: str
    citations: list[str]
    # Best cosine between the sentence and a sentence of a passage it cites; None when it cites none.
    support: float | None
    supported: bool
    evidence: list[Evidence] = field(default_factory=list)
    reason: str | None = None  # why it is unsupported
    # The judge's probability that the cited abstract entails it; None when nobody judged it.
    entailment: float | None = None


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
    # Each sentence of `text` with its support and evidence; empty for a refusal.
    sentences: list[Sentence] = field(default_factory=list)
    # Sentences the answerer wrote that were withheld: their sources do not support them (`reason`).
    unsupported: list[Sentence] = field(default_factory=list)
    # Every id the answerer wrote, before verification removed the unretrieved ones (`dropped_citations`).
    proposed_citations: list[str] = field(default_factory=list)
    # Seconds: retrieval_s, first_token_s (the answerer's first output), total_s (question to answer).
    timings: dict[str, float] = field(default_factory=dict)
    # Who judged that each sentence is entailed by the abstract it cites: a model's name, "none"
    # (nobody: the warnings say so) or "extractive" (verbatim sentences need no judge).
    verifier: str = "none"

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
