"""Overviews (a cited line per relevant paper) and comparisons (a line per side and the difference), #26."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Answer, Assistant
from assistant.answering.grammar import papers_grammar
from assistant.answering.papers import findings
from assistant.embeddings import MiniLMEmbedding
from assistant.llms.llamacpp import bundled_installed, llama_cpp_installed
from assistant.llms.prompts import NOT_FOUND
from assistant.retrieve.kinds import overview_topic
from assistant.retrieve.sentences import score_sentences
from assistant.schema import Passage
from tests.helpers.fake_judge import WordJudge
from tests.helpers.fake_llm import fake_backend
from tests.helpers.settings import make_settings

ALPACA, DUAL_USE, CHECKLIST = "2305.14387", "2302.05733", "2005.04118"
SUBSPACES = "2102.10472"
LLMS = "What do the papers say about large language models?"
BACKGROUND = "Large language models (LLMs) such as ChatGPT have seen widespread adoption"
# Words of the two abstracts only (the word judge holds a claim to its evidence's words).
RELATED = (
    f"AlpacaFarm simulates human feedback [arXiv:{ALPACA}], and instruction-following LLMs can produce "
    f"malicious content [arXiv:{DUAL_USE}]."
)


def run(bot: Assistant, question: str, **kwargs: object) -> tuple[list[str], Answer]:
    *pieces, result = bot.stream(question, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, Answer) and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces) == (result.text if result.answered else "")  # what streamed is the answer
    return [str(p) for p in pieces], result


@pytest.fixture
def bot(seed_store: Path, embed: MiniLMEmbedding):
    """An assistant over the bundled abstracts with a scripted hosted model (or extractive) and a judge."""

    def make(*replies: str, judge: WordJudge | None = None, extractive: bool = False, **overrides: object):
        backend, llm = fake_backend(*replies)
        kwargs = {} if extractive else {"backend": backend}
        made = Assistant(make_settings(seed_store, **overrides), embed_model=embed, **kwargs)
        made.judge = judge
        return made, llm

    return make


def test_an_overview_is_one_cited_line_per_paper_past_its_background(bot) -> None:
    made, _ = bot(extractive=True)
    pieces, result = run(made, LLMS)
    lines = result.text.split("\n")
    assert len(lines) == len(pieces) == len(result.sentences) >= 2
    assert set(result.citations) == {ALPACA, DUAL_USE}
    for line, sentence in zip(lines, result.sentences, strict=True):
        assert line == sentence.text and len(sentence.citations) == 1
        assert line.endswith(f"[arXiv:{sentence.citations[0]}]")
    assert BACKGROUND not in result.text and result.backend == "extractive"


def test_max_papers_bounds_the_lines(bot) -> None:
    made, _ = bot(extractive=True, **{"answer.max_papers": 1})
    _, result = run(made, LLMS)
    assert len(result.sentences) == 1 and "\n" not in result.text


def test_the_model_relates_the_papers_in_one_judged_sentence(bot) -> None:
    made, llm = bot(RELATED, judge=WordJudge())
    _, result = run(made, LLMS)
    *lines, related = result.text.split("\n")
    assert related == RELATED and {s.citations[0] for s in result.sentences[:-1]} == {ALPACA, DUAL_USE}
    assert result.sentences[-1].entailment == 0.95 and result.sentences[-1].citations == [ALPACA, DUAL_USE]
    assert result.backend == "fake" and result.verifier == "word-judge"
    assert "relate to each other" in llm.prompts[-1]


def test_a_relating_sentence_its_papers_do_not_entail_is_withheld(bot) -> None:
    made, _ = bot(f"Both papers study zebras [arXiv:{ALPACA}] [arXiv:{DUAL_USE}].", judge=WordJudge())
    _, result = run(made, LLMS)
    assert "zebras" not in result.text and len(result.sentences) == 2
    assert result.backend == "extractive" and result.verifier == "extractive"
    assert result.unsupported[0].reason.startswith("its cited abstract does not entail it")
    assert result.warnings[-1].startswith("fake's sentence relating the papers was not shown")


def test_a_relating_sentence_must_cite_two_papers_and_is_not_moved_to_one(bot) -> None:
    one = f"AlpacaFarm simulates human feedback at a low cost [arXiv:{ALPACA}] [arXiv:{ALPACA}]."
    made, _ = bot(one, judge=WordJudge())
    _, result = run(made, LLMS)
    assert len(result.sentences) == 2 and result.backend == "extractive"
    assert result.unsupported[0].text.startswith("AlpacaFarm simulates")
    assert result.unsupported[0].reason == "it cites fewer than two of the papers"
    # Entailed by AlpacaFarm alone, it would have been re-cited to it: not for a relating sentence.
    made, _ = bot(
        f"AlpacaFarm simulates human feedback [arXiv:{DUAL_USE}] [arXiv:{CHECKLIST}].", judge=WordJudge()
    )
    _, result = run(made, LLMS)
    assert len(result.sentences) == 2 and not any("cited instead" in w for w in result.warnings)


def test_with_a_judge_an_overview_keeps_the_papers_it_says_answer(bot) -> None:
    class OnlyAlpaca(WordJudge):
        def answerable(self, question: str, evidence: str) -> float:
            return 0.9 if ALPACA in evidence else 0.1

    made, _ = bot(judge=OnlyAlpaca())  # no relating sentence: one paper left
    _, result = run(made, LLMS)
    assert result.citations == [ALPACA] and len(result.sentences) == 1


def test_an_overview_no_paper_answers_is_refused_and_says_why(bot) -> None:
    made, llm = bot(judge=WordJudge(answerable=0.1))
    _, result = run(made, LLMS)
    assert result.text == NOT_FOUND and not result.citations and llm.prompts == []
    assert result.warnings == [
        "the judge word-judge found no retrieved paper's finding that answers the question"
    ]


def test_model_written_lines_are_judged_and_an_unentailed_one_replaced_by_the_abstracts(bot) -> None:
    lines = (
        f"AlpacaFarm is a simulator for learning from feedback at a low cost [arXiv:{ALPACA}]. "
        f"It proves that zebras write scams [arXiv:{DUAL_USE}]."
    )
    made, llm = bot(lines, RELATED, judge=WordJudge(), **{"answer.paper_lines": "model"})
    _, result = run(made, LLMS)
    first, second, related = result.text.split("\n")
    assert first == f"AlpacaFarm is a simulator for learning from feedback at a low cost [arXiv:{ALPACA}]."
    assert second.endswith(f"[arXiv:{DUAL_USE}]") and "zebras" not in second  # the abstract's sentence
    assert related == RELATED and result.backend == "fake"
    assert "For each passage, in the order given" in llm.prompts[0]


def test_a_comparison_cites_both_papers_one_line_each(bot) -> None:
    made, _ = bot(extractive=True)
    _, result = run(made, "How do CheckList and the paper on dual-use risks of LLMs differ?")
    assert result.citations == [CHECKLIST, DUAL_USE]
    assert [p.arxiv_id for p in result.passages] == [CHECKLIST, DUAL_USE]
    assert len(result.text.split("\n")) == 2


def test_a_side_the_whole_question_does_not_find_is_searched_on_its_own(bot) -> None:
    made, _ = bot(extractive=True)
    question = "How do CheckList and the paper on dual-use risks of LLMs differ?"
    assert len(made.retrieve(question, top_k=1)) == 1  # one paper: the whole question cannot find both
    _, result = run(made, question, top_k=1)
    assert result.citations == [CHECKLIST, DUAL_USE]


def test_the_model_states_the_difference(bot) -> None:
    difference = (
        f"CheckList tests NLP models [arXiv:{CHECKLIST}], while the other shows LLMs can produce "
        f"malicious content [arXiv:{DUAL_USE}]."
    )
    made, llm = bot(difference, judge=None)
    _, result = run(made, "Compare CheckList with the paper on dual-use risks of LLMs.")
    assert result.text.split("\n")[-1] == difference and result.citations == [CHECKLIST, DUAL_USE]
    assert "say how these papers differ" in llm.prompts[-1]
    assert result.warnings == [
        "no model judged whether the cited abstracts entail these sentences (verifier none)"
    ]


def test_a_comparison_within_one_paper_is_answered_as_one_question(bot) -> None:
    made, _ = bot(extractive=True)
    _, result = run(made, "How does learning a line of networks compare in cost to training one model?")
    assert result.citations[:1] == [SUBSPACES] and len(result.sentences) <= 3


def test_findings_leave_out_the_background() -> None:
    text = (
        "Recent observations have advanced our understanding of the landscape. Previous methods need many "
        "runs. In contrast we aim to use one run. We learn lines of networks."
    )
    passage = Passage("2102.10472", None, 0.5, text)
    scores = score_sentences("landscape", [passage], _Words())
    assert [i.sentence for i in findings(scores, 0)] == [
        "In contrast we aim to use one run.",
        "We learn lines of networks.",
    ]


class _Words:
    """A stand-in encoder: every text the same vector (the order of sentences is what is tested)."""

    def embed(self, texts: list[str]):
        import numpy as np

        return np.ones((len(texts), 4), dtype=np.float32) / 2


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("What do the papers say about learning from human feedback?", "learning from human feedback"),
        (
            "Which papers study how to train neural networks more efficiently?",
            "train neural networks more efficiently",
        ),
        ("Give me an overview of work on testing NLP models.", "testing NLP models"),
    ],
)
def test_an_overview_is_searched_by_its_topic(question: str, topic: str) -> None:
    assert overview_topic(question) == topic


@pytest.mark.skipif(not llama_cpp_installed(), reason="pip install -e '.[local]'")
def test_the_papers_grammars_compile() -> None:
    from llama_cpp import LlamaGrammar

    for related in (False, True):
        LlamaGrammar.from_string(papers_grammar([ALPACA, DUAL_USE], related=related), verbose=False)


@pytest.mark.slow
@pytest.mark.skipif(not bundled_installed(), reason="pip install -e '.[local]'")
@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What do the papers say about learning from human feedback?", {ALPACA}),
        ("How do CheckList and the paper on dual-use risks of LLMs differ?", {CHECKLIST, DUAL_USE}),
    ],
)
def test_the_bundled_model_answers_each_kind(
    seed_store: Path, embed: MiniLMEmbedding, question: str, expected: set[str]
) -> None:
    local = Assistant(make_settings(seed_store, **{"answer.llm": "local"}), embed_model=embed)
    _, result = run(local, question)
    assert expected <= set(result.citations), result.text
    assert BACKGROUND not in result.text


def test_the_web_chat_shows_an_overview_as_a_list_and_reads_it_back() -> None:
    from assistant.web.render import plain_text, reply_markdown

    text = f"A finding [arXiv:{ALPACA}].\nAnother one [arXiv:{DUAL_USE}]."
    markdown = reply_markdown(text)
    first, second = markdown.split("\n")
    assert first.startswith("- A finding [arXiv:2305.14387](https://arxiv.org/abs/2305.14387)")
    assert second.startswith("- Another one")
    assert plain_text(markdown) == text  # what a follow-up's history carries
    assert reply_markdown("One line [arXiv:2305.14387].").startswith("One line")  # no list
