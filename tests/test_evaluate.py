"""`assistant eval`: metrics against hand-computed values, conversations, the JSON contract, outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from assistant.embeddings import MiniLMEmbedding
from assistant.errors import InputError
from assistant.evaluate import evaluate, load_cases, retrieval_scores
from assistant.evaluate.report import markdown, write
from assistant.pipeline import Assistant
from tests.helpers.cli import run
from tests.helpers.fake_judge import WordJudge
from tests.helpers.fake_llm import fake_backend

QUESTIONS = Path(__file__).resolve().parent.parent / "assistant" / "data" / "seed_questions.jsonl"


def test_metrics_match_hand_computed_values() -> None:
    scores = retrieval_scores(["a", "b"], ["x", "a", "y", "b"], [1, 2, 4])
    gain2, gain4 = 1 / math.log2(3), 1 / math.log2(5)
    assert scores["hit@1"] == 0 and scores["hit@2"] == 1 and scores["hit@4"] == 1
    assert scores["recall@1"] == 0 and scores["recall@2"] == 0.5 and scores["recall@4"] == 1
    assert scores["ndcg@1"] == 0
    assert scores["ndcg@2"] == pytest.approx(gain2 / (1 + gain2))
    assert scores["ndcg@4"] == pytest.approx((gain2 + gain4) / (1 + gain2))
    assert scores["mrr"] == 0.5
    # One expected id found first: perfect at every k, even though k > number expected.
    assert set(retrieval_scores(["a"], ["a", "x"], [1, 5]).values()) == {1.0}
    assert set(retrieval_scores(["a"], [], [1, 5]).values()) == {0.0}


def test_bad_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "What is CheckList?", "expected_ids": ["2005.04118v2"]}\n'
        "{not json\n"
        '{"question": "no ids"}\n'
        "\n"
        '{"turns": []}\n'
        '{"question": "Fine", "expected_ids": [], "answer_contains": "not a list"}\n'
    )
    warnings: list[str] = []
    cases = load_cases(path, warnings.append)
    assert [c.expected_ids for conv in cases for c in conv] == [("2005.04118",)]
    assert [w.split(": skipped")[0] for w in warnings] == [f"{path}:{n}" for n in (2, 3, 5, 6)]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no questions"):
        load_cases(empty, warnings.append)


def test_conversations_and_unanswerable_questions(seed_assistant: Assistant) -> None:
    warnings: list[str] = []
    cases = load_cases(QUESTIONS, warnings.append)
    report = evaluate(seed_assistant, cases, retrievers=("dense", "hybrid"), ks=[1, 5], warn=warnings.append)
    assert warnings == []
    assert report.n_questions == 21
    hybrid = report.retrievers["hybrid"]
    assert set(hybrid) == {
        "hit@1",
        "hit@5",
        "recall@1",
        "recall@5",
        "ndcg@1",
        "ndcg@5",
        "mrr",
        "answerable_kept",
        "unanswerable_declined",
    }
    assert hybrid["recall@5"] == 1.0 and hybrid["unanswerable_declined"] == 1.0
    # Every answerable question's passages clear the threshold (docs/measured.md: lowest best sentence 0.40).
    assert hybrid["answerable_kept"] == 1.0
    assert all(r["retrieval_ms"] > 0 for r in report.per_question)
    follow_up = [r for r in report.per_question if r.get("turn") == 2 and r["retriever"] == "hybrid"]
    assert [(r["conversation"], r["rank"]) for r in follow_up] == [(0, 1), (1, 1)]
    assert "| hit@1 |" in markdown(report)


ANSWER_KEYS = {
    "right_paper_cited",
    "first_citation_right",
    "facts_present",
    "false_refusals",
    "unanswerable_refused",
    "unsupported_sentences",
    "dropped_citation_share",
    "first_token_s_median",
    "total_s_median",
}


def test_answer_metrics_count_what_the_model_proposed(
    seed_assistant: Assistant, seed_store: Path, embed: MiniLMEmbedding, tmp_path: Path
) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "How much cheaper is simulated human feedback?", "expected_ids": ["2305.14387"], '
        '"answer_contains": ["45x", "not in the abstract"]}\n'
        '{"question": "What is AdaScale SGD?", "expected_ids": ["2007.05105"]}\n'
        '{"question": "What is the capital of Australia?", "expected_ids": []}\n'
    )
    backend, _ = fake_backend(
        # One real and one fabricated citation (verification drops half of what the model proposed),
        # then a figure no abstract states (withheld as unsupported).
        "Simulated feedback is 45x cheaper than crowdworkers [arXiv:2305.14387] [arXiv:9912.99999]. "
        "AlpacaFarm was first released in 1850 [arXiv:2305.14387].",
        # The right paper cited second, after a retrieved one that is true but not what was asked.
        "AlpacaFarm is a simulator for learning from feedback at a low cost [arXiv:2305.14387]. "
        "AdaScale SGD adapts learning rates to large-batch training [arXiv:2007.05105].",
    )
    fake = Assistant(seed_assistant.settings, embed_model=embed, store=seed_assistant.store, backend=backend)
    fake.judge = WordJudge()
    report = evaluate(seed_assistant, load_cases(path, print), answers=[fake, seed_assistant])
    model, extractive = report.answers["fake"], report.answers["extractive"]
    assert set(model) >= ANSWER_KEYS and set(extractive) >= ANSWER_KEYS
    assert model["right_paper_cited"] == 1.0 and model["first_citation_right"] == 0.5
    assert model["dropped_citation_share"] == round(1 / 4, 4)  # 4 proposed, 1 dropped
    assert model["facts_present"] == 0.5 and model["unanswerable_refused"] == 1.0
    assert model["false_refusals"] == 0.0
    assert model["unsupported_sentences"] == 0.25  # 1850 of 4 sentences
    assert extractive["dropped_citation_share"] == 0.0 and extractive["first_citation_right"] == 1.0
    assert extractive["total_s_median"] >= extractive["first_token_s_median"] > 0
    assert "| proposed citations dropped by verification | 0.250 | 0.000 |" in markdown(report)


def test_unknown_expected_ids_warn_once(seed_assistant: Assistant, tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "What is CheckList?", "expected_ids": ["9999.00001"]}\n'
        '{"question": "What is AdaScale?", "expected_ids": ["9999.00001", "2007.05105"]}\n'
    )
    warnings: list[str] = []
    evaluate(seed_assistant, load_cases(path, warnings.append), warn=warnings.append)
    assert len(warnings) == 1 and "9999.00001" in warnings[0]


def test_outputs_and_plot(seed_assistant: Assistant, tmp_path: Path) -> None:
    report = evaluate(seed_assistant, load_cases(QUESTIONS, print), retrievers=("bm25", "hybrid"))
    files = write(report, tmp_path / "out")
    assert [f.name for f in files] == ["report.md", "results.json", "per_question.jsonl", "recall_at_k.png"]
    png = (tmp_path / "out" / "recall_at_k.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    rows = [json.loads(line) for line in (tmp_path / "out" / "per_question.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * report.n_questions


@pytest.mark.slow
def test_cli_json_contract(seed_store: Path, tmp_path: Path) -> None:
    out = run(
        "eval", str(QUESTIONS), "--store", str(seed_store), "--retriever", "all", "--k", "1,3", "--json"
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) == {"n_questions", "retrievers", "answers", "per_question"}
    assert set(data["retrievers"]) == {"dense", "bm25", "hybrid"}
    assert {"hit@1", "recall@3", "ndcg@3", "mrr"} <= set(data["retrievers"]["dense"])
    row = data["per_question"][0]
    assert {"question", "expected_ids", "retriever", "retrieved_ids", "rank"} <= set(row)
    turns = [r for r in data["per_question"] if "turn" in r]
    assert turns and all(isinstance(r["conversation"], int) and r["turn"] >= 1 for r in turns)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    failed = run("eval", str(empty), "--store", str(seed_store))
    assert failed.returncode == 1 and failed.stderr.startswith("assistant: error: ")
    bad_k = run("eval", str(QUESTIONS), "--store", str(seed_store), "--k", "1,x")
    assert bad_k.returncode == 1 and "--k" in bad_k.stderr
