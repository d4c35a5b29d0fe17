"""Answer generation with a scripted model: refusals decided by evidence, checked streaming, support."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Answer, Assistant
from assistant.answering.grammar import answer_grammar
from assistant.answering.stream import SentenceStream
from assistant.embeddings import MiniLMEmbedding
from assistant.llms.prompts import HOSTED_SYSTEM_PROMPT, NOT_FOUND, SYSTEM_PROMPT
from tests.helpers.fake_judge import WordJudge
from tests.helpers.fake_llm import fake_backend
from tests.helpers.settings import make_settings

QUESTION = "How much cheaper is simulated human feedback than crowdworkers?"
RIGHT = "2305.14387"
OTHER = "2007.05105"  # AdaScale SGD: retrieved for this question, but says nothing about feedback
CLAIM = f"Simulated feedback is 45x cheaper than crowdworkers [arXiv:{RIGHT}]."


@pytest.fixture
def ask(seed_store: Path, embed: MiniLMEmbedding):
    """Ask the bundled store with a scripted hosted model; return (streamed pieces, Answer, the model)."""

    def run(
        question: str,
        *replies: str | Exception,
        hosted: bool = True,
        judge: WordJudge | None | str = "words",
        **overrides: object,
    ):
        backend, llm = fake_backend(*replies, hosted=hosted)
        bot = Assistant(make_settings(seed_store, **overrides), embed_model=embed, backend=backend)
        bot.judge = WordJudge() if judge == "words" else judge  # type: ignore[assignment]
        *pieces, result = bot.stream(question)
        assert isinstance(result, Answer) and all(isinstance(p, str) for p in pieces)
        return pieces, result, llm

    return run


def test_every_streamed_piece_is_a_checked_sentence(ask) -> None:
    reply = f"{CLAIM} It also cites a paper that was never retrieved [arXiv:9912.99999]. Plain claim here."
    pieces, result, _ = ask(QUESTION, reply)
    # The fabricated id is never shown, not even while streaming; what streamed is the answer.
    assert pieces == [CLAIM] and result.text == CLAIM
    assert result.proposed_citations == [RIGHT, "9912.99999"]
    assert result.dropped_citations == ["9912.99999"] and result.citations == [RIGHT]
    # The two sentences that cite nothing (once the fabricated id is gone) are withheld, and said so.
    assert [s.text for s in result.unsupported] == [
        "It also cites a paper that was never retrieved.",
        "Plain claim here.",
    ]
    assert {s.reason for s in result.unsupported} == {"it cites no retrieved paper"}
    assert not result.grounded


def test_an_uncited_sentence_a_retrieved_paper_states_is_cited_to_it(ask) -> None:
    reply = "Simulated feedback is 45x cheaper than crowdworkers. Plain claim here."
    pieces, result, _ = ask(QUESTION, reply)
    assert pieces == [f"Simulated feedback is 45x cheaper than crowdworkers. [arXiv:{RIGHT}]"]
    assert result.citations == [RIGHT] and result.proposed_citations == []
    assert result.warnings == [f"a sentence cited no paper; arXiv:{RIGHT} says it, and is cited"]
    assert [s.text for s in result.unsupported] == ["Plain claim here."]


def test_a_refusal_mixed_into_an_answer_is_removed_and_said(ask) -> None:
    pieces, result, _ = ask(QUESTION, f"{CLAIM} {NOT_FOUND}")
    assert result.text == CLAIM and NOT_FOUND not in "".join(pieces)
    assert result.warnings == [
        "fake added a refusal that contradicted its cited answer; the refusal was removed"
    ]


def test_refusal_when_the_judge_finds_the_answer_is_not_accepted(ask) -> None:
    _, result, _ = ask(QUESTION, NOT_FOUND, judge=WordJudge(answerable=0.9))
    assert result.backend == "extractive" and result.citations[0] == RIGHT
    assert result.warnings[0] == (
        "fake declined, but the passages answer the question (the judge word-judge: 0.90); "
        "answered with the extractive answerer instead"
    )


def test_the_model_is_not_asked_when_the_judge_finds_no_answer(ask) -> None:
    judge = WordJudge(answerable=0.2)
    _, result, llm = ask(QUESTION, judge=judge)  # no reply queued: asking the model would fail
    assert result.text == NOT_FOUND and not result.answered and llm.prompts == []
    assert result.warnings == ["the judge word-judge found no answer in the best passages (0.20 < 0.50)"]
    assert len(judge.calls) == 1 and QUESTION in judge.calls[0]


def test_without_a_judge_strong_evidence_decides_and_the_answer_says_it_was_not_judged(ask) -> None:
    # The question's best sentence is 0.71, the threshold 0.38: strong from a margin of 0.33 down.
    _, result, _ = ask(QUESTION, NOT_FOUND, judge=None, **{"answer.strong_margin": 0.2})
    assert result.backend == "extractive" and result.verifier == "extractive"
    assert "an abstract sentence matches it closely" in result.warnings[0]
    _, result, _ = ask(QUESTION, NOT_FOUND, judge=None, **{"answer.strong_margin": 0.5})
    assert result.text == NOT_FOUND and result.warnings == []
    _, result, _ = ask(QUESTION, CLAIM, judge=None)
    assert result.text == CLAIM and result.verifier == "none" and result.sentences[0].entailment is None
    assert result.warnings == [
        "no model judged whether the cited abstracts entail these sentences (verifier none)"
    ]


def test_a_sentence_its_cited_abstract_does_not_entail_is_withheld(ask) -> None:
    # Built from the abstract's own words, so it is on topic, but it says what the abstract does not.
    false = (
        f"AlpacaFarm replaces crowdworkers with reinforcement learning from zebra feedback [arXiv:{RIGHT}]."
    )
    pieces, result, _ = ask(QUESTION, f"{CLAIM} {false}")
    assert pieces == [CLAIM] and result.text == CLAIM and result.verifier == "word-judge"
    assert result.sentences[0].entailment == 0.95
    (withheld,) = result.unsupported
    assert withheld.entailment == 0.05
    assert withheld.reason == "its cited abstract does not entail it (judge 0.05 < 0.70)"


def test_when_the_judge_cannot_run_nothing_is_shown_as_checked(ask) -> None:
    _, result, _ = ask(QUESTION, CLAIM, judge=WordJudge(fail=True))
    assert result.backend == "extractive" and result.verifier == "extractive"
    assert result.warnings == [
        "word-judge failed (ConnectionError: connection refused); "
        "answered with the extractive answerer instead"
    ]


def test_nothing_relevant_is_refused_without_any_model_time(ask) -> None:
    _, result, llm = ask("What is the capital of Australia?")  # no reply queued: calling it would fail
    assert result.text == NOT_FOUND and llm.prompts == []
    assert result.timings["total_s"] >= result.timings["retrieval_s"] > 0


def test_each_sentence_is_scored_against_what_it_cites(ask) -> None:
    wrong = (
        f"Simulated human feedback is 45x cheaper and displays high agreement with humans [arXiv:{OTHER}]."
    )
    unsupported = f"Zebra stripes evolved to confuse biting flies [arXiv:{OTHER}]."
    pieces, result, _ = ask(QUESTION, f"{CLAIM} {wrong} {unsupported}")
    right_sentence, recited = result.sentences
    assert right_sentence.supported and right_sentence.support > 0.6
    evidence = right_sentence.evidence[0]
    assert evidence.arxiv_id == RIGHT and "45x cheaper" in evidence.sentence
    # A claim citing a retrieved paper that does not say it, when the judge says another retrieved
    # paper does: that one is cited instead, and the answer says so.
    assert recited.citations == [RIGHT] and recited.text.endswith(f"[arXiv:{RIGHT}].")
    assert result.warnings == [
        f"a sentence cited arXiv:{OTHER}, which does not say it; arXiv:{RIGHT} does, and is cited instead"
    ]
    # A claim no retrieved paper says is withheld, never streamed.
    (withheld,) = result.unsupported
    assert withheld.text == unsupported and not withheld.supported and withheld.entailment == 0.05
    assert "does not entail" in withheld.reason and pieces == [CLAIM, f" {recited.text}"]
    assert OTHER in result.proposed_citations and OTHER not in result.citations


def test_a_figure_the_sources_do_not_state_is_withheld(ask) -> None:
    invented = f"Simulated feedback is 99x cheaper than crowdworkers [arXiv:{RIGHT}]."
    pieces, result, _ = ask(QUESTION, invented)
    assert pieces == [] and result.text == NOT_FOUND and not result.answered
    assert result.unsupported[0].reason == "its sources do not state 99"


def test_hosted_models_get_the_synthesis_prompt_and_budget(ask) -> None:
    _, result, llm = ask(QUESTION, CLAIM)
    assert HOSTED_SYSTEM_PROMPT in llm.prompts[0] and "short paragraph" in llm.prompts[0]
    assert "Passage 1" not in llm.prompts[0] and f"[arXiv:{RIGHT}]" in llm.prompts[0]
    assert result.timings["first_token_s"] <= result.timings["total_s"]


def test_local_models_get_the_tight_prompt(ask) -> None:
    _, _, llm = ask(QUESTION, CLAIM, hosted=False)
    assert SYSTEM_PROMPT in llm.prompts[0] and HOSTED_SYSTEM_PROMPT not in llm.prompts[0]


def test_backend_budgets_unless_set() -> None:
    from assistant.config import AnswerSettings

    default = AnswerSettings()
    assert default.context_tokens(local=True) < default.context_tokens(local=False) >= 1500
    assert AnswerSettings(max_context_tokens=300).context_tokens(local=False) == 300


def test_sentence_stream_waits_for_the_next_sentence() -> None:
    stream = SentenceStream()
    assert stream.feed("AdaScale is 1.") == []
    assert stream.feed("5x faster [arXiv:1]. It adapts") == ["AdaScale is 1.5x faster [arXiv:1]."]
    assert stream.feed(" learning rates, e.g. the") == []
    assert stream.close() == ["It adapts learning rates, e.g. the"]


def test_markers_after_the_full_stop_stay_with_their_sentence() -> None:
    stream = SentenceStream()
    assert stream.feed("It beats SWA.") == []
    assert stream.feed(" [arXiv:2102.") == []  # a marker on its way: the sentence is not done
    assert stream.feed("10472] It is cheap. [arXiv:2102.10472]") == ["It beats SWA. [arXiv:2102.10472]"]
    assert stream.close() == ["It is cheap. [arXiv:2102.10472]"]


def test_the_grammar_names_only_the_given_ids() -> None:
    grammar = answer_grammar(["2305.14387", "2007.05105"], refusal=True)
    assert 'id ::= "2305.14387" | "2007.05105"' in grammar
    assert grammar.startswith("root ::= refusal | answer")
    assert answer_grammar(["2305.14387"], refusal=False).startswith("root ::= answer")
    with pytest.raises(ValueError):
        answer_grammar([], refusal=True)


def test_a_constrained_retry_sees_only_the_strong_evidence(ask) -> None:
    # SDN's best sentence is 0.59, the GAN paper's 0.53: both are shown first (within 0.8 of the best),
    # only SDN clears the strong band (0.38 + 0.18) that overrides the refusal. (A single-paper question:
    # "Which papers study ..." is an overview, answered a line per paper, test_overview.py.)
    question = "Which generative models learn sets of images?"
    sdn = "Set Distribution Networks learn to autoencode and freely generate sets [arXiv:2006.10705]."
    _, result, llm = ask(question, NOT_FOUND, sdn, hosted=False, **{"answer.strong_margin": 0.18})
    first, retry = llm.prompts
    assert "[arXiv:1910.13101]" in first and "[arXiv:1910.13101]" not in retry
    assert "[arXiv:2006.10705]" in retry
    assert (
        result.citations == ["2006.10705"] and "asked it again, constrained to answer" in result.warnings[0]
    )
