"""The verification stage: a model judges whether the abstract a sentence cites entails it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.answering.support import stems
from assistant.errors import AssistantError
from assistant.llms.judge import Judge
from assistant.retrieve.sentences import sentences
from assistant.schema import Passage, Sentence
from assistant.sources.citations import without_citations

# Other retrieved papers a sentence its own source does not entail is judged against, closest first:
# each costs one judgement.
RECITE_CANDIDATES = 2


def evidence_for(claim: str, text: str, count: int) -> str:
    """Return the `count` sentences of `text` sharing most content words with `claim`, in their order.

    0 gives the whole text. Fewer sentences cost fewer prompt tokens and, measured on the bundled
    abstracts, judge no worse (MODELS.md; README "How answers are checked").
    """
    if count <= 0:
        return " ".join(text.split())
    parts = sentences(text)
    wanted = stems(claim)
    ranked = sorted(range(len(parts)), key=lambda i: (-len(wanted & stems(parts[i])), i))
    return " ".join(parts[i] for i in sorted(ranked[:count]))


@dataclass
class Verifier:
    """A judge, its threshold and the retrieved papers' texts by arXiv id."""

    judge: Judge
    min_entailment: float
    sentences: int  # of each cited abstract shown to the judge (0: all)
    texts: Callable[[str], str]  # a paper's whole abstract by arXiv id

    def entailment(self, claim: str, cited: Sequence[str]) -> float:
        """Return the judge's probability that the cited papers' texts entail `claim` (markers removed)."""
        plain = without_citations(claim)
        evidence = " ".join(evidence_for(plain, self.texts(i), self.sentences) for i in cited)
        return round(self.judge.entailment(plain, evidence), 4)

    def judged(self, sentence: Sentence) -> Sentence:
        """Return `sentence` with the judge's probability, withheld below `min_entailment`."""
        p = self.entailment(sentence.text, sentence.citations)
        if p >= self.min_entailment:
            return dataclasses.replace(sentence, entailment=p)
        reason = f"its cited abstract does not entail it (judge {p:.2f} < {self.min_entailment:.2f})"
        return dataclasses.replace(sentence, entailment=p, supported=False, reason=reason)

    def other_source(self, sentence: Sentence, candidates: Sequence[str]) -> tuple[str, float] | None:
        """Return the first of `candidates` (at most RECITE_CANDIDATES) the judge says entails it."""
        for arxiv_id in candidates[:RECITE_CANDIDATES]:
            p = self.entailment(sentence.text, [arxiv_id])
            if p >= self.min_entailment:
                return arxiv_id, p
        return None


def abstracts(passages: Sequence[Passage], lookup: Callable[[str], str] | None) -> Callable[[str], str]:
    """Return a paper's whole abstract by id: `lookup` (the store) once per paper, else its passages.

    A retrieved passage may be one chunk of a long abstract: judged against it alone, a sentence the
    other chunk states would be withheld.
    """
    joined: dict[str, list[str]] = {}
    for passage in passages:
        if passage.text not in joined.setdefault(passage.arxiv_id, []):
            joined[passage.arxiv_id].append(passage.text)

    @functools.cache
    def text(arxiv_id: str) -> str:
        if lookup is not None:
            try:
                return lookup(arxiv_id)
            except AssistantError:  # deleted from the store since it was retrieved
                pass
        return " ".join(joined.get(arxiv_id, []))

    return text
