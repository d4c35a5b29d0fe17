"""Retrieval and answers over the bundled abstracts, through the Python API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant import Answer, Assistant, answer
from assistant.errors import InputError
from assistant.llms.prompts import NOT_FOUND
from tests.helpers.settings import make_settings

PARAPHRASES = [
    ("How can feedback from people be simulated cheaply to study instruction following?", "2305.14387"),
    ("Can instruction-tuned language models be misused to write scams and hate speech?", "2302.05733"),
    ("Are there paths of high accuracy connecting diverse solutions in the loss landscape?", "2102.10472"),
    ("How should the learning rate change when training with much larger batches?", "2007.05105"),
    ("Learning representations of sets of images, such as faces of the same person", "2006.10705"),
    ("Learning 3D scene representations from images without 3D supervision", "2006.07630"),
    ("Testing NLP models behaviourally beyond held-out accuracy", "2005.04118"),
    ("Treating a GAN's discriminator as an energy model", "1910.13101"),
    ("Learning the loss function itself instead of hand-crafting it", "1905.05895"),
    ("How is the academic publishing landscape changing over the years?", "1809.07841"),
]


@pytest.mark.parametrize(("question", "arxiv_id"), PARAPHRASES)
def test_paraphrased_question_finds_the_paper(
    seed_assistant: Assistant, question: str, arxiv_id: str
) -> None:
    passages = seed_assistant.retrieve(question)
    assert passages[0].arxiv_id == arxiv_id
    assert len({p.arxiv_id for p in passages}) == len(passages)  # one passage per paper


def test_answer_cites_the_right_paper(seed_assistant: Assistant) -> None:
    result = seed_assistant.ask("How much cheaper is simulated human feedback than crowdworkers?")
    assert isinstance(result, Answer)
    assert result.backend == "extractive"
    assert result.citations[0] == "2305.14387"
    assert "45x cheaper" in result.text
    assert set(result.citations) <= {p.arxiv_id for p in result.passages}
    assert f"[arXiv:{result.citations[0]}]" in result.text


def test_off_topic_question_is_refused(seed_assistant: Assistant) -> None:
    result = seed_assistant.ask("What is the capital of Australia?")
    assert result.text == NOT_FOUND
    assert result.citations == []


@pytest.mark.parametrize(
    ("question", "message"), [("", "empty"), ("   \n", "empty"), ("x" * 100_000, "100,000")]
)
def test_bad_questions(seed_assistant: Assistant, question: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        seed_assistant.ask(question)


# One limit per entry point's parameter, each broken the way a client could break it.
BAD_CALLS = [
    ({"top_k": -1}, "top_k -1 is not allowed: give a whole number from 1 to 100"),
    ({"top_k": 0}, "top_k 0 is not allowed"),
    ({"top_k": 1_000_000}, "top_k 1000000 is not allowed"),
    ({"top_k": 2.5}, "top_k 2.5 is not allowed"),
    ({"top_k": "5"}, "top_k '5' is not allowed"),
    ({"top_k": True}, "top_k True is not allowed"),
    ({"retriever": "sparse"}, "retriever 'sparse' is unknown: use one of dense, bm25, hybrid"),
    ({"retriever": 3}, "retriever 3 is unknown"),
    ({"filters": {"since": "2024-13-01"}}, "filter since='2024-13-01' is not a date; write YYYY-MM-DD"),
    ({"filters": {"until": 20240101}}, "filter until must be text, not int"),
    ({"filters": {"categories": 5}}, "filter categories must be text, not int"),
    (
        {"filters": {"author": "Sm\udcffith"}},
        "filter author is not valid text: character 3 is an undecodable",
    ),
    ({"filters": {"author": "x" * 201}}, "filter author is longer than 200 characters"),
    ({"filters": {"colour": "red"}}, "unknown filter"),
    ({"filters": "cs.CL"}, "filters must be a mapping"),
    ({"question": "What is \udcff\udcfe AdaScale?"}, "the question is not valid text: character 9"),
    ({"history": "What is CheckList?"}, "history must be a list of earlier messages"),
    ({"history": 5}, "history must be a list"),
]


@pytest.mark.parametrize(("call", "message"), BAD_CALLS)
def test_bad_parameters_are_one_clear_input_error(
    seed_assistant: Assistant, call: dict, message: str
) -> None:
    kwargs = {"question": "What is AdaScale SGD?", **call}
    with pytest.raises(InputError, match=re.escape(message)):
        list(seed_assistant.stream(kwargs.pop("question"), **kwargs))
    if "history" not in call:  # retrieval alone applies the same limits
        with pytest.raises(InputError, match=re.escape(message)):
            seed_assistant.retrieve(**{"question": "What is AdaScale SGD?", **call})


def test_limits_accept_the_edges(seed_assistant: Assistant) -> None:
    assert len(seed_assistant.retrieve("AdaScale SGD", top_k=100)) == 10  # every paper, once
    assert len(seed_assistant.retrieve("AdaScale SGD", top_k=3.0)) == 3  # a slider's or JSON's 3.0
    result = seed_assistant.ask("AdaScale SGD", top_k=1, retriever="bm25", filters={"categories": None})
    assert result.citations == ["2007.05105"]


def test_answer_on_a_fresh_default_store_indexes_the_bundled_abstracts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASSISTANT_LLM", "extractive")  # `auto` would pick the bundled model
    result = answer("What did the AdaScale SGD paper propose?")
    assert result.citations[0] == "2007.05105"
    assert "indexing the bundled abstracts" in capfd.readouterr().err
    assert (tmp_path / "index_store" / "chroma.sqlite3").exists()


def test_answer_with_explicit_settings(seed_store: Path) -> None:
    result = answer("CheckList behavioral testing of NLP models", top_k=2, settings=make_settings(seed_store))
    assert len(result.passages) == 2
    assert result.passages[0].arxiv_id == "2005.04118"
