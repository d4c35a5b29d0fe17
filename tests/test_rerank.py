"""The rerank stage: sentence scores with the real MiniLM (re-used by the answer stage), LLMRerank
with a deterministic model, and what happens when a reranker fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.bridge.pydantic import PrivateAttr

from assistant.embeddings import MiniLMEmbedding, SentenceCache
from assistant.errors import ConfigError
from assistant.llms import Backend
from assistant.pipeline import Assistant
from assistant.retrieve.rerank import Reranker
from assistant.schema import Passage
from tests.helpers.fake_llm import fake_backend
from tests.helpers.settings import make_settings

QUESTION = "How much cheaper is simulated human feedback than crowdworkers?"
RIGHT = "2305.14387"
PASSAGES = [
    Passage("0000.00001", None, 0.3, "We bake bread with sourdough starter. The crust browns at high heat."),
    Passage(
        "0000.00002",
        None,
        0.2,
        "Crowdworkers are expensive to hire. Simulating human feedback with models costs 45x less "
        "than paying crowdworkers.",
    ),
    Passage("0000.00003", None, 0.1, "A study of river sediments in spring floods across three valleys."),
]


class CountingMiniLM(MiniLMEmbedding):
    """The real bundled model, recording every text it is asked to embed."""

    _seen: list[str] = PrivateAttr(default_factory=list)

    def embed(self, texts: list[str]) -> np.ndarray:
        self._seen.extend(texts)
        return super().embed(texts)


def test_sentences_put_the_paper_that_says_it_first(embed: MiniLMEmbedding) -> None:
    ranked = Reranker("sentences").rerank(QUESTION, PASSAGES, 2, SentenceCache(embed))
    assert [p.arxiv_id for p in ranked] == ["0000.00002", "0000.00001"]
    scores = [p.metadata["rerank_score"] for p in ranked]
    assert scores[0] > scores[1] and ranked[0].score == 0.2  # the passage's own cosine is kept


def test_no_sentence_is_embedded_twice_for_one_question(seed_store: Path) -> None:
    counting = CountingMiniLM()
    settings = make_settings(seed_store, **{"retrieval.rerank": "sentences", "retrieval.top_k": 3})
    bot = Assistant(settings, embed_model=counting)
    result = bot.ask(QUESTION)
    assert result.citations[:1] == [RIGHT] and len(result.passages) == 3
    sentences = [t for t in counting._seen if t != QUESTION]
    # The question once for retrieval and once with the sentences; every sentence exactly once,
    # although the rerank stage scored them all and the answer stage scored its three papers again.
    assert counting._seen.count(QUESTION) == 2 and len(sentences) == len(set(sentences)) > 20


def test_llm_rerank_puts_the_models_choices_first(capsys: pytest.CaptureFixture[str], embed: Any) -> None:
    backend, llm = fake_backend("Doc: 3, Relevance: 9\nDoc: 2, Relevance: 4")
    ranked = Reranker("llm", backend=backend).rerank(QUESTION, PASSAGES, 3, SentenceCache(embed))
    assert [p.arxiv_id for p in ranked] == ["0000.00003", "0000.00002", "0000.00001"]
    assert "Simulating human feedback" in llm.prompts[0]  # the model saw the passages' text
    # A model that fails or answers nonsense leaves the fused order, said in one line.
    for reply in (RuntimeError("model overloaded"), "I cannot rank these."):
        backend, _ = fake_backend(reply)
        ranked = Reranker("llm", backend=backend).rerank(QUESTION, PASSAGES, 2, SentenceCache(embed))
        assert [p.arxiv_id for p in ranked] == ["0000.00001", "0000.00002"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reranking with llm failed (RuntimeError: model overloaded)" in err


def test_llm_rerank_needs_a_model() -> None:
    with pytest.raises(ConfigError, match="needs a generative answerer"):
        Reranker("llm", backend=Backend("extractive"))
