"""Retrieval and answers over the bundled abstracts, through the Python API."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Answer, Assistant, answer
from assistant.errors import InputError
from assistant.prompts import NOT_FOUND
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
