"""Support per answer sentence: what it claims must be said by a passage it cites (bundled MiniLM)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from assistant.embeddings import TextEncoder
from assistant.retrieve.condense import key_terms
from assistant.retrieve.sentences import SentenceScores
from assistant.schema import Evidence, Sentence
from assistant.sources.citations import REPEATED_MARKER, without_citations

# A figure in an answer must be one its sources (or the question) state: small models invent them
# when pushed for a detail no abstract gives ("a batch size of 128").
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# "How many ...?" / "How much ...?" asks for a figure: a sentence giving none does not answer it (a
# small model pushed to answer restates the question, or copies an unrelated sentence).
_QUANTITY_QUESTION = re.compile(r"^\W*(?:how (?:many|much)|for how many)\b", re.IGNORECASE)
_FIGURE_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|fifty|hundreds?|"
    r"thousands?|millions?|billions?|twice|thrice|half|double|triple|dozens?|once|none|no)\b",
    re.IGNORECASE,
)
# A name a question asks about: inner capitals or digits (ImageNet, CIFAR-10, GPT-4, SWA), or a capital
# past the question's first word (Transformer). No passage naming it -> the passages cannot state it.
_NAME = re.compile(r"\b(?=[\w-]*(?:[A-Z]|\d))[A-Za-z][\w-]*[A-Z0-9][\w-]*\b|(?<=\w )\b[A-Z][a-z]+\b")
# "The papers [arXiv:A] [arXiv:B]." claims nothing; "It is 45x cheaper [arXiv:A]." does.
MIN_CLAIM_WORDS = 3
# "AlpacaFarm uses a reward model architecture." for "What reward model architecture does AlpacaFarm
# use?" is the question turned round: an answer must add a content word (stem) or a figure of its
# own ("Goodhart's Law ...", "120 million papers ..." do). Yes/no and which-papers questions are
# exempt ("Yes, there are paths of high accuracy ...", "The papers [arXiv:A] study X.").
_YES_NO_QUESTION = re.compile(
    r"^\W*(?:is|are|was|were|can|could|does|do|did|has|have|had|will|would|should)\b", re.IGNORECASE
)
# "Which papers study X?" is answered by the papers' markers: "The papers [arXiv:A] study X." is no
# restatement.
_WHICH_PAPERS = re.compile(
    r"\b(?:which|what) (?:papers?|works?|studies|articles?|abstracts?)\b", re.IGNORECASE
)


def _stems(text: str) -> set[str]:
    stemmer = _stemmer()
    return {stemmer.stemWord(word.lower()) for word in key_terms(text)}


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def blended(cosine: float, claim: str, cited: dict[str, str]) -> float:
    """Average the claim's cosine with the share of its content words that the cited passages contain.

    A short or paraphrased answer ("45x cheaper than crowdworkers") embeds far from the long sentence
    that says it (cosine 0.49) although every word of it is there; an invented claim misses words.
    """
    words = _stems(claim)
    if not words:
        return cosine
    found = _stems(" ".join(cited.values()))
    return (cosine + len(words & found) / len(words)) / 2


def check_support(
    text: str,
    citations: Sequence[str],
    scores: SentenceScores,
    embed_model: TextEncoder,
    *,
    min_support: float,
    question: str,
) -> Sentence:
    """Check `text` against the sentences of the passages it cites; say why if they do not support it.

    The support is the best cosine between the sentence (markers removed) and a sentence of a cited
    passage, or, if higher, its blend with the claim's word overlap (`blended`); the evidence is each
    cited paper's closest sentence. A sentence is unsupported when it cites nothing, says nothing
    (markers and a few words), only restates the question, names a figure its sources do not state,
    or its support is below `min_support`.
    """
    claim = without_citations(text)
    rows = [i for i, item in enumerate(scores.items) if item.passage.arxiv_id in citations]
    if not rows:  # it cites nothing (or only passages too short to hold a sentence)
        return Sentence(text, list(citations), None, False, reason="it cites no retrieved paper")
    similarities = scores.vectors[rows] @ embed_model.embed([claim])[0]
    cited = {scores.items[r].passage.arxiv_id: scores.items[r].passage.text for r in rows}
    evidence: dict[str, Evidence] = {}
    for row, similarity in zip(rows, similarities, strict=True):
        item = scores.items[row]
        held = evidence.get(item.passage.arxiv_id)
        if held is None or similarity > held.similarity:
            evidence[item.passage.arxiv_id] = Evidence(
                item.passage.arxiv_id, item.sentence, round(float(similarity), 4)
            )
    cosine = float(np.max(similarities))
    support = round(max(cosine, blended(cosine, claim, cited)), 4)
    stated = set(_NUMBER.findall(" ".join([*cited.values(), question])))
    invented = [n for n in _NUMBER.findall(claim) if n not in stated]
    reason = None
    if len(claim.split()) < MIN_CLAIM_WORDS:
        reason = "it says nothing beyond its citation"
    elif invented:
        reason = f"its sources do not state {invented[0]}"
    elif support < min_support:
        reason = f"no sentence of its sources says this closely enough ({support:.2f} < {min_support:.2f})"
    elif _QUANTITY_QUESTION.match(question) and not gives_figure(claim, question):
        reason = "the question asks how many or how much, and this gives no figure"
    elif restates(claim, question):
        reason = "it only restates the question"
    return Sentence(
        text=text,
        citations=list(citations),
        support=support,
        supported=reason is None,
        evidence=[evidence[i] for i in citations if i in evidence],
        reason=reason,
    )


def restates(claim: str, question: str) -> bool:
    """Whether `claim` adds no content word and no figure to a question that is not yes/no."""
    if _YES_NO_QUESTION.match(question) or _WHICH_PAPERS.search(question) or gives_figure(claim, question):
        return False
    stemmer = _stemmer()
    asked = {stemmer.stemWord(word.lower()) for word in re.findall(r"\w+", question)}  # every word counts
    return not _stems(claim) - asked


def gives_figure(claim: str, question: str) -> bool:
    """Whether `claim` states a number (digits or words) beyond those the question already holds."""
    asked = set(_NUMBER.findall(question))
    return any(n not in asked for n in _NUMBER.findall(claim)) or bool(_FIGURE_WORDS.search(claim))


def recite(
    failed: Sentence,
    scores: SentenceScores,
    embed_model: TextEncoder,
    *,
    min_support: float,
    question: str,
) -> Sentence | None:
    """Return `failed` citing the retrieved paper that supports it best, if one does; else None.

    A small model sometimes states what one passage says and cites the passage beside it, or (a hosted
    model writing a paragraph) cites nothing; the claim is kept only when a retrieved paper passes
    every check `check_support` makes.
    """
    if failed.support is None and failed.citations:
        return None  # it cites only passages too short to hold a sentence: nothing to compare with
    best: Sentence | None = None
    for arxiv_id in dict.fromkeys(item.passage.arxiv_id for item in scores.items):
        if arxiv_id in failed.citations:
            continue
        text = failed.text if failed.citations else f"{failed.text} [arXiv:{arxiv_id}]"
        for old in failed.citations:
            text = text.replace(f"[arXiv:{old}]", f"[arXiv:{arxiv_id}]")
        text = REPEATED_MARKER.sub(r"\1", text)  # its citations replaced by one paper's
        candidate = check_support(
            text, [arxiv_id], scores, embed_model, min_support=min_support, question=question
        )
        if candidate.supported and (best is None or (candidate.support or 0) > (best.support or 0)):
            best = candidate
    return best


def unmentioned_names(question: str, texts: Sequence[str]) -> list[str]:
    """Return the names in `question` (ImageNet, GPT-4, BERT) that none of `texts` mentions."""
    haystack = " ".join(texts).lower()
    return [name for name in dict.fromkeys(_NAME.findall(question)) if name.lower() not in haystack]
