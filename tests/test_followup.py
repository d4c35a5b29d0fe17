"""Follow-ups are answered from the papers the conversation cited, when those hold the answer (#26 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Answer, Assistant
from assistant.embeddings import MiniLMEmbedding
from assistant.llms.judge import ANSWERABLE_SYSTEM
from assistant.llms.llamacpp import bundled_installed
from assistant.llms.prompts import NOT_FOUND
from assistant.retrieve.condense import cited_papers
from tests.helpers.fake_judge import WordJudge, _words
from tests.helpers.fake_llm import fake_backend
from tests.helpers.settings import make_settings

ADASCALE = "2007.05105"
CHECKLIST = "2005.04118"
FIRST = "Which method adapts the learning rate to the batch size?"
FIRST_REPLY = f"AdaScale SGD reliably adapts learning rates to large-batch training [arXiv:{ADASCALE}]."
# Words of AdaScale's abstract only (the word judge holds a claim to its evidence's words).
EVALUATED = (
    "Large-batch training had no model degradation for machine translation, image classification, "
    f"object detection, and speech recognition tasks [arXiv:{ADASCALE}]."
)


class TopicJudge(WordJudge):
    """The word judge, answerable only when the evidence holds every word of `topic`."""

    def __init__(self, topic: str) -> None:
        super().__init__()
        self.topic = _words(topic)
        self.answerable_evidence: list[str] = []

    def yes_probability(self, system: str, user: str) -> float:
        if system == ANSWERABLE_SYSTEM:
            self.calls.append(user)
            evidence = user.partition("\n\nQuestion: ")[0]
            self.answerable_evidence.append(evidence)
            return 0.9 if self.topic <= _words(evidence) else 0.1
        return super().yes_probability(system, user)


@pytest.fixture
def chat(seed_store: Path, embed: MiniLMEmbedding):
    """Hold a two-turn conversation with a scripted model; return both answers and the model."""

    def run(second: str, *replies: str, judge=None, history_as: str = "answers", **overrides: object):
        backend, llm = fake_backend(FIRST_REPLY, *replies)
        bot = Assistant(make_settings(seed_store, **overrides), embed_model=embed, backend=backend)
        bot.judge = None  # the first turn is not what is tested
        first = bot.chat(FIRST)
        assert first.citations == [ADASCALE], first.text
        bot.judge = judge
        history = (
            [first]
            if history_as == "answers"
            else [{"role": "user", "content": FIRST}, {"role": "assistant", "content": first.text}]
        )
        return first, bot.chat(second, history), llm

    return run


def test_a_follow_up_is_answered_from_the_conversations_paper(chat) -> None:
    judge = TopicJudge("speech recognition")
    # AdaScale's whole abstract answers it, as asked: the model writes no stand-alone rewrite first.
    _, second, llm = chat("How was it evaluated?", EVALUATED, judge=judge)
    assert isinstance(second, Answer) and second.text == EVALUATED
    assert second.citations == [ADASCALE] and [p.arxiv_id for p in second.passages] == [ADASCALE]
    assert second.sentences[0].entailment == 0.95
    # The judge was asked once, about AdaScale's sentences; the model saw them as its passages.
    assert len(judge.answerable_evidence) == 1 and "speech recognition" in judge.answerable_evidence[0]
    assert len(llm.prompts) == 2 and "speech recognition" in llm.prompts[-1]
    assert "Question: How was it evaluated?" in llm.prompts[-1]


def test_the_conversation_papers_are_read_from_role_content_history_too(chat) -> None:
    judge = TopicJudge("speech recognition")
    _, second, _ = chat("How was it evaluated?", EVALUATED, judge=judge, history_as="messages")
    assert second.citations == [ADASCALE] and [p.arxiv_id for p in second.passages] == [ADASCALE]


def test_a_follow_up_they_do_not_answer_goes_to_a_fresh_retrieval(chat) -> None:
    # AdaScale says nothing of a user study; CheckList does, and a fresh search finds it.
    judge = TopicJudge("user study")
    reply = f"In a user study, a team found new and actionable bugs [arXiv:{CHECKLIST}]."
    _, second, _ = chat(
        "What did its user study find?", "What did the CheckList user study find?", reply, judge=judge
    )
    assert second.citations == [CHECKLIST], second.text
    assert len(judge.answerable_evidence) == 2  # the conversation's paper, then the fresh passages
    assert "user study" not in judge.answerable_evidence[0]
    assert CHECKLIST in {p.arxiv_id for p in second.passages}


def test_a_refusal_only_when_neither_answers(chat) -> None:
    judge = TopicJudge("license")
    # No answer queued: asking the model after the condense step would fail the test.
    _, second, llm = chat(
        "What license is it released under?", "What license is AdaScale released under?", judge=judge
    )
    assert second.text == NOT_FOUND and not second.citations
    # AdaScale's abstract was judged first; the fresh search found no relevant sentence at all.
    assert judge.answerable_evidence[0].startswith(f"Passages: [arXiv:{ADASCALE}]")
    assert len(llm.prompts) == 2  # the first answer and the condense step: never asked to answer


def test_without_a_judge_the_relevance_threshold_decides(chat) -> None:
    # verifier none: the conversation's paper answers when one of its sentences is relevant enough.
    _, second, _ = chat(
        "How does it adapt them?", "How does AdaScale adapt learning rates to large batches?", FIRST_REPLY
    )
    assert second.citations == [ADASCALE] and [p.arxiv_id for p in second.passages] == [ADASCALE]
    assert second.warnings[-1].startswith("no model judged")


def test_a_stand_alone_question_is_searched_afresh(chat) -> None:
    judge = TopicJudge("behavioral testing")
    reply = f"CheckList is a task-agnostic methodology for testing NLP models [arXiv:{CHECKLIST}]."
    _, second, _ = chat("What is CheckList, the behavioral testing methodology?", reply, judge=judge)
    assert second.citations == [CHECKLIST] and len(judge.answerable_evidence) == 1


def test_cited_papers_newest_answer_first() -> None:
    history = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a [arXiv:2005.04118] b [arXiv:2007.05105]."},
        {"role": "user", "content": "q2"},
        {"role": "assistant", "content": "c [arXiv:2102.10472] and again [arXiv:2007.05105]."},
    ]
    assert cited_papers(history, limit=5) == ["2102.10472", "2007.05105", "2005.04118"]
    assert cited_papers(history, limit=1) == ["2102.10472"]
    assert cited_papers(history, limit=5, recent=1) == ["2102.10472", "2007.05105"]


@pytest.mark.slow
@pytest.mark.skipif(not bundled_installed(), reason="pip install -e '.[local]'")
def test_the_bundled_model_answers_how_adascale_was_evaluated(
    seed_store: Path, embed: MiniLMEmbedding
) -> None:
    bot = Assistant(make_settings(seed_store, **{"answer.llm": "local"}), embed_model=embed)
    first = bot.chat(FIRST)
    assert first.citations[:1] == [ADASCALE], first.text
    second = bot.chat("How was it evaluated?", [first])
    # Answered from AdaScale's abstract, not refused (the observation).
    assert second.citations[:1] == [ADASCALE] and NOT_FOUND not in second.text, (second.text, second.warnings)
    tasks = ("machine translation", "image classification", "object detection", "speech recognition")
    if not any(task in second.text.lower() for task in tasks):
        # Seen twice on 2026-12-05: "The convergence bound of AdaScale's quality is formally described in
        # the paper." (judged entailed); asked "What tasks was it evaluated on?" it names the four tasks.
        pytest.xfail(f"the bundled model did not name the evaluation tasks: {second.text}")
