"""`assistant eval`: score retrieval (and answers) on the user's own test questions.

Package `evaluate`, a front end: scoring on test questions (here) and the report files and plot
(`report`). It may import every stage up to `pipeline`; `cli` runs it.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.embeddings import SentenceCache
from assistant.errors import InputError, SourceError
from assistant.pipeline import Assistant
from assistant.retrieve import RETRIEVERS
from assistant.retrieve.condense import Turn, condense
from assistant.retrieve.sentences import relevant_sentences
from assistant.sources.ids import normalize_id


@dataclass(frozen=True)
class Case:
    """One test question: what should be retrieved and, optionally, said."""

    question: str
    expected_ids: tuple[str, ...]
    answer_contains: tuple[str, ...] = ()
    line: int = 0
    conversation: int | None = None  # 0-based, for the conversation form
    turn: int | None = None  # 1-based


def _case(data: Any, line: int, conversation: int | None = None, turn: int | None = None) -> Case:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("question"), str)
        or not data["question"].strip()
    ):
        raise ValueError("needs a non-empty 'question' string")
    expected = data.get("expected_ids")
    if not isinstance(expected, list) or not all(isinstance(i, str) for i in expected):
        raise ValueError(
            "needs 'expected_ids': a list of arXiv ids ([] for a question the corpus cannot answer)"
        )
    contains = data.get("answer_contains", [])
    if not isinstance(contains, list) or not all(isinstance(s, str) for s in contains):
        raise ValueError("'answer_contains' must be a list of strings")
    ids = tuple(dict.fromkeys(normalize_id(i) for i in expected))
    return Case(data["question"].strip(), ids, tuple(contains), line, conversation, turn)


def load_cases(path: Path, warn: Callable[[str], None]) -> list[list[Case]]:
    """Read a questions file into conversations (a single question is a one-turn conversation)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read it ({exc}); give a UTF-8 JSON-lines file") from None
    conversations: list[list[Case]] = []
    n_conversations = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if isinstance(data, dict) and "turns" in data:
                if not isinstance(data["turns"], list) or not data["turns"]:
                    raise ValueError("'turns' must be a non-empty list of questions")
                turns = [_case(t, number, n_conversations, i) for i, t in enumerate(data["turns"], start=1)]
                n_conversations += 1
                conversations.append(turns)
            else:
                conversations.append([_case(data, number)])
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            warn(f"{path}:{number}: skipped: {exc}")
    if not conversations:
        raise InputError(
            f"{path}: no questions in it; write one JSON object per line (see docs/evaluation.md)"
        )
    return conversations


def retrieval_scores(
    expected: Sequence[str], retrieved: Sequence[str], ks: Sequence[int]
) -> dict[str, float]:
    """Return hit@k, recall@k, ndcg@k for each k, and MRR over the whole ranking, for one question."""
    from llama_index.core.evaluation.retrieval.metrics import MRR, HitRate, Recall

    def score(metric: Any, top: Sequence[str]) -> float:
        # llama-index's metrics refuse an empty ranking; nothing retrieved scores 0.
        return (
            float(metric.compute(expected_ids=list(expected), retrieved_ids=list(top)).score) if top else 0.0
        )

    scores = {f"hit@{k}": score(HitRate(), retrieved[:k]) for k in ks}
    scores |= {f"recall@{k}": score(Recall(), retrieved[:k]) for k in ks}
    scores |= {f"ndcg@{k}": ndcg(expected, retrieved, k) for k in ks}
    scores["mrr"] = score(MRR(), retrieved)
    return scores


def ndcg(expected: Sequence[str], top: Sequence[str], k: int) -> float:
    """Binary-relevance nDCG@k."""
    # Not llama-index's NDCG: its ideal DCG counts every expected id even past the cut-off, so a
    # question with more expected ids than k could never score 1 at k.
    wanted = set(expected)
    dcg = sum(1 / math.log2(i + 1) for i, doc in enumerate(top[:k], start=1) if doc in wanted)
    ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(wanted), k) + 1))
    return dcg / ideal if ideal else 0.0


@dataclass
class Report:
    """Everything `assistant eval` measured; `to_dict` is the `--json` contract."""

    n_questions: int
    ks: list[int]
    retrievers: dict[str, dict[str, float]] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)
    per_question: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: n_questions, retrievers, answers, per_question."""
        return {
            "n_questions": self.n_questions,
            "retrievers": self.retrievers,
            "answers": self.answers,
            "per_question": self.per_question,
        }


def _mean(values: Sequence[float]) -> float:
    return round(statistics.fmean(values), 4) if values else 0.0


def _steps(conversations: list[list[Case]]) -> Iterator[tuple[Case, list[Turn]]]:
    """Yield each case with the conversation before it (questions only: retrieval needs no answers)."""
    for conversation in conversations:
        for i, case in enumerate(conversation):
            yield case, [Turn(c.question) for c in conversation[:i]]


def evaluate_retrieval(
    bot: Assistant, conversations: list[list[Case]], kind: str, ks: list[int], bar: Any, *, kept: bool = True
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score one retriever on every case; return its averaged metrics and the per-question rows.

    Besides the ranking metrics: the share of answerable questions whose passages clear the
    relevance threshold (`answerable_kept`) and of unanswerable ones whose do not
    (`unanswerable_declined`); each row has its retrieval time (`retrieval_ms`, rerank included).
    Without `kept`, answerable questions skip the threshold check (it embeds their sentences).
    """
    rows, sums, n_kept, declined, unanswerable = [], [], 0, 0, 0
    threshold = bot.min_score(kind)
    for case, history in _steps(conversations):
        query = condense(case.question, history, llm=None)
        sentences = SentenceCache(bot.sentence_model)  # the rerank stage's sentence vectors, re-used
        start = time.perf_counter()
        passages = bot.retrieve(query, max(ks), retriever=kind, sentences=sentences)
        elapsed = (time.perf_counter() - start) * 1000
        ranked = [p.arxiv_id for p in passages]
        rank = next((i for i, r in enumerate(ranked, start=1) if r in case.expected_ids), None)
        # What the answer stage would see: the first top_k papers (of the same candidates, if reranked).
        shown = passages[: bot.settings.retrieval.top_k]
        check = kept or not case.expected_ids
        cleared = check and bool(relevant_sentences(query, shown, sentences, min_score=threshold))
        row: dict[str, Any] = {
            "question": case.question,
            "expected_ids": list(case.expected_ids),
            "retriever": kind,
            "retrieved_ids": ranked,
            "rank": rank,
            "retrieval_ms": round(elapsed, 2),
        }
        if case.conversation is not None:
            row |= {"conversation": case.conversation, "turn": case.turn}
        if case.expected_ids:
            sums.append(retrieval_scores(case.expected_ids, ranked, ks))
            n_kept += cleared
        else:
            unanswerable += 1
            declined += not cleared
            row["declined"] = not cleared
        rows.append(row)
        bar.update(1)
    metrics = {name: _mean([s[name] for s in sums]) for name in (sums[0] if sums else {})}
    metrics["answerable_kept"] = round(n_kept / len(sums), 4) if sums and kept else None  # type: ignore[assignment]
    metrics["unanswerable_declined"] = round(declined / unanswerable, 4) if unanswerable else None  # type: ignore[assignment]
    return metrics, rows


# Passage labels a model copied into its answer ("Passage 2 arXiv:..."): prompts label passages by id only.
_PASSAGE_LABEL = re.compile(r"\bPassage\s*\d", re.IGNORECASE)


def evaluate_answers(
    bot: Assistant, conversations: list[list[Case]], bar: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer every case through the chat path; return answer metrics and per-question rows.

    The citation measure counts what the answerer proposed before verification, so it can fail.
    """
    rows: list[dict[str, Any]] = []
    right, first_right, facts, false_refusals, refused = [], [], [], [], []
    first_token, total = [], []
    sentences = unsupported = proposed = dropped = artefacts = 0
    for conversation in conversations:
        history: list[Any] = []
        for case in conversation:
            result = bot.chat(case.question, history)
            history.append(result)
            declined = not result.citations
            if case.expected_ids:
                right.append(float(bool(set(result.citations) & set(case.expected_ids))))
                first_right.append(float(bool(result.citations) and result.citations[0] in case.expected_ids))
                false_refusals.append(float(declined))
            else:
                refused.append(float(declined))
            if case.answer_contains:
                text = result.text.lower()
                facts.append(_mean([float(s.lower() in text) for s in case.answer_contains]))
            sentences += len(result.sentences) + len(result.unsupported)
            unsupported += len(result.unsupported)
            proposed += len(result.proposed_citations)
            dropped += len(result.dropped_citations)
            artefacts += bool(_PASSAGE_LABEL.search(result.text))
            first_token.append(result.timings.get("first_token_s", 0.0))
            total.append(result.timings.get("total_s", 0.0))
            rows.append(
                {
                    "question": case.question,
                    "expected_ids": list(case.expected_ids),
                    "answer": result.text,
                    "citations": result.citations,
                    "proposed_citations": result.proposed_citations,
                    "dropped_citations": result.dropped_citations,
                    "unsupported": [s.text for s in result.unsupported],
                    "backend": result.backend,
                    "grounded": result.grounded,
                    "warnings": result.warnings,
                    "timings": result.timings,
                    **(
                        {"conversation": case.conversation, "turn": case.turn}
                        if case.conversation is not None
                        else {}
                    ),
                }
            )
            bar.update(1)
    metrics = {
        "backend": bot.backend,
        "answerable": len(right),
        "unanswerable": len(refused),
        "right_paper_cited": _mean(right) if right else None,
        "first_citation_right": _mean(first_right) if first_right else None,
        "facts_present": _mean(facts) if facts else None,
        "false_refusals": _mean(false_refusals) if false_refusals else None,
        "unanswerable_refused": _mean(refused) if refused else None,
        "unsupported_sentences": round(unsupported / sentences, 4) if sentences else 0.0,
        "dropped_citation_share": round(dropped / proposed, 4) if proposed else 0.0,
        "passage_artefacts": artefacts,
        "first_token_s_median": round(statistics.median(first_token), 3),
        "total_s_median": round(statistics.median(total), 3),
    }
    return metrics, rows


def evaluate(
    bot: Assistant,
    conversations: list[list[Case]],
    *,
    retrievers: Sequence[str] = ("hybrid",),
    ks: Sequence[int] = (1, 5, 10),
    answers: Sequence[Assistant] = (),
    warn: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    progress: bool = False,
) -> Report:
    """Run the test questions through each retriever, then each answering assistant, and collect metrics.

    The answer metrics are keyed by the answering backend's name.
    """
    from tqdm import tqdm

    for kind in retrievers:
        if kind not in RETRIEVERS:
            raise InputError(f"unknown retriever {kind!r}; use {', '.join(RETRIEVERS)} or all")
    ks = sorted(set(ks))
    cases = [c for conversation in conversations for c in conversation]
    bot.ensure_indexed()
    expected = sorted({i for c in cases for i in c.expected_ids})
    unknown = sorted(set(expected) - set(bot.store.fingerprints(expected)))
    if unknown:
        warn(
            f"warning: {len(unknown)} expected id(s) are not in the store, so recall cannot reach 1: "
            + ", ".join(unknown[:10])
        )
    report = Report(n_questions=len(cases), ks=ks)
    total = len(cases) * (len(retrievers) + len(answers))
    with tqdm(
        total=total, unit=" questions", file=sys.stderr, disable=not progress, desc="evaluating"
    ) as bar:
        for kind in retrievers:
            report.retrievers[kind], rows = evaluate_retrieval(bot, conversations, kind, ks, bar)
            report.per_question.extend(rows)
        for answering in answers:
            metrics, rows = evaluate_answers(answering, conversations, bar)
            report.answers[answering.backend] = metrics
            report.per_question.extend(rows)
    return report
