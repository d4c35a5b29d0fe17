"""A deterministic judge for the answer gate's wiring tests."""

from __future__ import annotations

import re

from assistant.llms.judge import ANSWERABLE_SYSTEM, Judge, JudgeError

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    """Content words cut to six letters: "simulated" and "simulate" are one word here."""
    return {w[:6] for w in _WORD.findall(text.lower()) if len(w) >= 4}


class WordJudge(Judge):
    """Says "entailed" when the evidence holds 80% of the claim's content words; scripted answerability.

    A stand-in with a rule anyone can predict, so a test can tell which sentence the gate should show;
    `fail=True` makes every judgement fail as an unreachable judge would.
    """

    def __init__(self, answerable: float = 0.9, *, fail: bool = False) -> None:
        self.name = "word-judge"
        self.answerable_p = answerable
        self.fail = fail
        self.calls: list[str] = []

    def yes_probability(self, system: str, user: str) -> float:
        """Return 0.95 / 0.05 by the word rule, or the scripted answerability."""
        self.calls.append(user)
        if self.fail:
            raise JudgeError("ConnectionError: connection refused")
        if system == ANSWERABLE_SYSTEM:
            return self.answerable_p
        return 0.95 if entailed_by_words(user) else 0.05


def entailed_by_words(prompt: str) -> bool:
    """The word rule on an entailment prompt: the evidence holds 80% of the claim's content words."""
    evidence, _, claim = prompt.partition("\n\nClaim: ")
    evidence = evidence.rpartition("Abstract: ")[2]
    words = _words(claim.split("\n\n")[0])
    return len(words & _words(evidence)) >= 0.8 * len(words)
