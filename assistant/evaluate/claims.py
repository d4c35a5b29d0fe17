"""`assistant eval --claims`: labelled claims scored as the answer gate sees them, per verifier."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.answering.support import exact_failure
from assistant.answering.verify import Verifier
from assistant.errors import AssistantError, InputError
from assistant.llms.judge import Judge
from assistant.sources.citations import parse_citations, without_citations

# Thresholds the report shows the two error rates at, beside the configured one.
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class Claim:
    """One labelled claim: a sentence citing its paper, and whether that paper supports it."""

    question: str
    claim: str
    supported: bool
    kind: str
    line: int


@dataclass
class ClaimsResult:
    """One verifier's judgements of every claim: what the gate showed and withheld, and the time."""

    verifier: str
    min_entailment: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return the rates the gate is judged by, overall and per kind, and the time per claim."""
        true = [r for r in self.rows if r["supported"]]
        false = [r for r in self.rows if not r["supported"]]
        kinds: dict[str, dict[str, int]] = {}
        for row in self.rows:
            tally = kinds.setdefault(row["kind"], {"claims": 0, "wrong": 0})
            tally["claims"] += 1
            tally["wrong"] += row["shown"] != row["supported"]
        return {
            "verifier": self.verifier,
            "min_entailment": self.min_entailment,
            "claims": len(self.rows),
            "false_claims_shown": _share(sum(r["shown"] for r in false), len(false)),
            "true_claims_withheld": _share(sum(not r["shown"] for r in true), len(true)),
            "seconds_per_claim_median": round(statistics.median(r["seconds"] for r in self.rows), 3)
            if self.rows
            else None,
            "by_kind": kinds,
            # Other thresholds only mean something when a judge gave figures.
            "sweep": {f"{t:.1f}": self._at(t) for t in SWEEP}
            if any(r["entailment"] is not None for r in self.rows)
            else {},
        }

    def _at(self, threshold: float) -> dict[str, float | None]:
        """The two error rates had the threshold been `threshold` (exact failures stay withheld)."""

        def shown(row: dict[str, Any]) -> bool:
            return row["exact"] is None and row["entailment"] is not None and row["entailment"] >= threshold

        true = [r for r in self.rows if r["supported"]]
        false = [r for r in self.rows if not r["supported"]]
        return {
            "false_claims_shown": _share(sum(shown(r) for r in false), len(false)),
            "true_claims_withheld": _share(sum(not shown(r) for r in true), len(true)),
        }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def load_claims(path: Path, warn: Callable[[str], None]) -> list[Claim]:
    """Read the claims file; a bad line is reported as file:line and skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it ({exc.__class__.__name__})") from None
    claims: list[Claim] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            claim, supported = data["claim"], data["supported"]
            if not isinstance(claim, str) or not isinstance(supported, bool):
                raise TypeError
            if not parse_citations(claim):
                warn(f"{path}:{number}: the claim cites no paper: end it with [arXiv:ID]; skipped")
                continue
        except (json.JSONDecodeError, KeyError, TypeError):
            warn(
                f"{path}:{number}: expected "
                '{"question": ..., "claim": "... [arXiv:ID]", "supported": true|false}; skipped'
            )
            continue
        claims.append(
            Claim(str(data.get("question") or ""), claim, supported, str(data.get("kind") or "-"), number)
        )
    if not claims:
        raise InputError(f"{path}: no usable claims")
    return claims


def judge_claims(
    claims: Sequence[Claim],
    judge: Judge | None,
    texts: Callable[[str], str],
    *,
    name: str,
    min_entailment: float,
    sentences: int,
    warn: Callable[[str], None],
) -> ClaimsResult:
    """Pass every claim through the exact checks and the judge, as an answer sentence is passed."""
    result = ClaimsResult(name, min_entailment)
    for claim in claims:
        cited = parse_citations(claim.claim)
        try:
            found = {arxiv_id: texts(arxiv_id) for arxiv_id in cited}
        except AssistantError as exc:
            warn(f"line {claim.line}: {exc}; skipped")
            continue
        plain = without_citations(claim.claim)
        start = time.perf_counter()
        exact = exact_failure(plain, found.values(), claim.question)
        p = None
        if exact is None and judge is not None:
            p = Verifier(judge, min_entailment, sentences, found.__getitem__).entailment(claim.claim, cited)
        result.rows.append(
            {
                "line": claim.line,
                "kind": claim.kind,
                "supported": claim.supported,
                "exact": exact,
                "entailment": p,
                "shown": exact is None and (p is None or p >= min_entailment),
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
    return result


def markdown(results: Sequence[ClaimsResult], source: str) -> str:
    """Return the per-verifier table (and each verifier's threshold sweep) as Markdown."""
    summaries = [r.summary() for r in results]
    names = [s["verifier"] for s in summaries]
    lines = [f"Claims from {source}: {summaries[0]['claims'] if summaries else 0}", ""]
    lines += ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in ("min_entailment", "false_claims_shown", "true_claims_withheld", "seconds_per_claim_median"):
        lines.append(f"| {key} | " + " | ".join(_cell(s[key]) for s in summaries) + " |")
    for summary in summaries:
        lines += [
            "",
            f"{summary['verifier']}: at other thresholds",
            "",
            "| threshold | false shown | true withheld |",
            "|---|---|---|",
        ]
        lines += [
            f"| {t} | {_cell(v['false_claims_shown'])} | {_cell(v['true_claims_withheld'])} |"
            for t, v in summary["sweep"].items()
        ]
        lines += ["", "| kind | claims | gate wrong |", "|---|---|---|"]
        lines += [f"| {k} | {v['claims']} | {v['wrong']} |" for k, v in sorted(summary["by_kind"].items())]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
