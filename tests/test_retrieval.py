"""Dense, BM25 and hybrid retrieval, filters, keyword-index sync and follow-up questions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from assistant import config_retrieval as config
from assistant.embeddings import MiniLMEmbedding
from assistant.errors import InputError
from assistant.ingest import Ingester
from assistant.llms.prompts import NOT_FOUND
from assistant.pipeline import Assistant, open_store
from assistant.retrieve import RETRIEVERS, Filters
from assistant.retrieve.condense import condense, turns
from assistant.store import keyword
from tests.helpers.settings import make_settings


@pytest.fixture(scope="module")
def head200(tmp_path_factory: pytest.TempPathFactory, embed: MiniLMEmbedding, data_dir: Path) -> Assistant:
    """An assistant over the 200 real papers of the Kaggle snapshot's head (2007, many archives)."""
    settings = make_settings(tmp_path_factory.mktemp("head200") / "store")
    store = open_store(settings, for_writing=True)
    Ingester(store, embed, settings.chunking).ingest([data_dir / "formats" / "kaggle-snapshot-head200.jsonl"])
    return Assistant(settings, embed_model=embed, store=store)


def ids(passages: list) -> list[str]:  # type: ignore[type-arg]
    return [p.arxiv_id for p in passages]


# "CheckList" is a made-up name: the dense model sees word pieces, BM25 sees the exact token.
KEYWORD_ONLY = ("CheckList", "2005.04118")
# No stemmed word in common with the abstract: only the meaning matches (BM25 finds nothing).
PARAPHRASE_ONLY = ("cheaply imitating annotators who judge assistant replies", "2305.14387")


@pytest.mark.parametrize(("question", "arxiv_id"), [KEYWORD_ONLY, PARAPHRASE_ONLY])
def test_hybrid_finds_keyword_only_and_paraphrase_only_questions(
    seed_assistant: Assistant, question: str, arxiv_id: str
) -> None:
    assert ids(seed_assistant.retrieve(question, retriever="hybrid"))[0] == arxiv_id


def test_each_retriever_alone_misses_one_of_them(seed_assistant: Assistant) -> None:
    # Why hybrid: BM25 alone cannot match the paraphrase, which shares no stemmed term.
    assert seed_assistant.retrieve(PARAPHRASE_ONLY[0], retriever="bm25") == []
    assert ids(seed_assistant.retrieve(KEYWORD_ONLY[0], retriever="bm25"))[0] == KEYWORD_ONLY[1]


@pytest.mark.parametrize(("weight", "alone"), [(0.0, "bm25"), (1.0, "dense")])
def test_hybrid_dense_weight_gives_one_ranking_all_the_say(
    head200: Assistant, weight: float, alone: str
) -> None:
    question = "superconductivity in thin films at low temperature"
    expected = ids(head200.retrieve(question, top_k=5, retriever=alone))
    assert len(expected) == 5
    head200.settings.retrieval.dense_weight, head200._retrieval = weight, None
    try:
        assert ids(head200.retrieve(question, top_k=5, retriever="hybrid")) == expected
    finally:
        head200.settings.retrieval.dense_weight, head200._retrieval = 0.3, None


@pytest.mark.parametrize("kind", RETRIEVERS)
def test_filters_alone_and_combined(head200: Assistant, kind: str) -> None:
    def found(query: str = "combinatorics of graphs and particles", **filters: object) -> list:  # type: ignore[type-arg]
        return head200.retrieve(query, top_k=50, retriever=kind, filters=filters)

    exact = found(categories=["math.CO"])
    assert exact and all("math.CO" in p.metadata["categories"] for p in exact)
    prefix = found(categories="math.*")
    assert len(prefix) > len(exact) and all("math" in p.metadata["archives"] for p in prefix)
    either = found(categories=["hep-ph", "math.CO"])
    assert {c for p in either for c in p.metadata["categories"]} >= {"hep-ph", "math.CO"}
    late = found(since="2007-04-02")
    assert late and all(p.metadata["date"] >= 20070402 for p in late)
    early = found(until="2007-03-31")
    assert early and all(p.metadata["date"] <= 20070331 for p in early)
    assert ids(found("photon pairs at hadron colliders", author="nadolsky")) == ["0704.0001"]
    chosen = found("graphs and counting automata", ids=["0704.0002v1", "arXiv:0704.0004"])
    assert sorted(ids(chosen)) == ["0704.0002", "0704.0004"]
    both = found(categories=["math.CO"], since="2007-04-02")
    assert both and all(
        "math.CO" in p.metadata["categories"] and p.metadata["date"] >= 20070402 for p in both
    )
    assert set(ids(both)) < set(ids(exact))


@pytest.mark.parametrize("kind", RETRIEVERS)
def test_empty_filter_match_returns_nothing(head200: Assistant, kind: str) -> None:
    for filters in ({"categories": ["q-bio.XX"]}, {"since": "2030-01-01"}, {"author": "Nobody Atall"}):
        assert head200.retrieve("graphs", retriever=kind, filters=filters) == []
    result = head200.ask("graphs", retriever=kind, filters={"since": "2030-01-01"})
    assert (result.text, result.citations) == (NOT_FOUND, [])


def test_bad_filters_are_clear_errors(head200: Assistant) -> None:
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        head200.retrieve("graphs", filters={"since": "last year"})
    with pytest.raises(InputError, match="unknown filter"):
        head200.retrieve("graphs", filters={"venue": "ICML"})
    with pytest.raises(InputError, match="retriever 'magic' is unknown"):
        head200.retrieve("graphs", retriever="magic")


def test_keyword_index_is_rebuilt_after_an_upsert(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    settings = make_settings(tmp_path / "s")
    store = open_store(settings, for_writing=True)
    ingester = Ingester(store, embed, settings.chunking)
    records = tmp_path / "a.jsonl"
    records.write_text(
        json.dumps({"id": "2501.00001", "abstract": "Sparse attention kernels on GPUs."}) + "\n"
    )
    ingester.ingest([records])
    bot = Assistant(settings, embed_model=embed, store=store)
    assert ids(bot.retrieve("zorblax", retriever="bm25")) == []
    records.write_text(
        json.dumps({"id": "2501.00002", "abstract": "The zorblax estimator for ranking."}) + "\n"
    )
    ingester.ingest([records])
    # The same Assistant sees the new paper at once: the store's change feed became a new segment.
    assert ids(bot.retrieve("zorblax", retriever="bm25")) == ["2501.00002"]
    assert keyword.up_to_date(store)  # and the ingest saved the index caught up, for other processes


def test_follow_up_with_the_extractive_fallback(seed_assistant: Assistant) -> None:
    first = seed_assistant.chat("What is CheckList?")
    assert first.citations[0] == "2005.04118"
    follow = seed_assistant.chat("What did its user study find?", [first])
    assert follow.citations[0] == "2005.04118"
    assert "bugs" in follow.text
    assert condense("What did its user study find?", [first]).startswith("What did its user study find? ")


def test_follow_up_history_as_chat_messages(seed_assistant: Assistant) -> None:
    history = [
        {"role": "user", "content": "What is AdaScale SGD?"},
        {"role": "assistant", "content": "An algorithm ... [arXiv:2007.05105]"},
    ]
    assert turns(history)[0].citations == ("2007.05105",)
    assert seed_assistant.chat("How does it compare to other methods?", history).citations[0] == "2007.05105"


class RewritingLLM:
    """A fake LLM: returns one queued rewrite and records the prompt it was given."""

    def __init__(self, reply: str) -> None:
        self.reply, self.prompts = reply, []  # type: ignore[var-annotated]

    def complete(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.reply


def test_follow_up_condensed_by_an_llm() -> None:
    llm = RewritingLLM("What did the CheckList user study find?")
    history = [("What is CheckList?", "A testing method [arXiv:2005.04118]")]
    assert (
        condense("What did its user study find?", history, llm=llm)
        == "What did the CheckList user study find?"
    )
    assert "What is CheckList?" in llm.prompts[0]
    # A stand-alone question is left alone and costs no LLM call.
    assert condense("What is AdaScale SGD?", history, llm=llm) == "What is AdaScale SGD?"
    assert len(llm.prompts) == 1


@pytest.mark.parametrize("kind", RETRIEVERS)
@pytest.mark.parametrize("question", ["What is the capital of Australia?", "How do I bake sourdough bread?"])
def test_off_topic_questions_are_declined(seed_assistant: Assistant, kind: str, question: str) -> None:
    result = seed_assistant.ask(question, retriever=kind)
    assert (result.text, result.citations) == (NOT_FOUND, [])


def test_refusal_threshold_rises_with_the_store_size() -> None:
    retrieval = config.RetrievalSettings()
    base = retrieval.min_score("hybrid")
    assert retrieval.min_score("hybrid", papers=10) == base == retrieval.min_score("hybrid", papers=2_000)
    assert retrieval.min_score("hybrid", papers=20_000) == pytest.approx(base + 0.07)
    # Not extrapolated beyond the largest store it was measured on.
    top = base + 0.07 * math.log10(75_000 / 2_000)
    assert retrieval.min_score("hybrid", papers=2_700_000) == pytest.approx(top)
    retrieval.min_score_growth = 0
    assert retrieval.min_score("hybrid", papers=75_000) == base


def test_the_assistant_uses_its_store_size_and_sees_it_grow(
    tmp_path: Path, embed: MiniLMEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The calibration points (2,000 and 75,000 papers) scaled down to stores a test can build.
    monkeypatch.setattr(config, "CALIBRATED_PAPERS", 1)
    monkeypatch.setattr(config, "LARGEST_CALIBRATED", 100)
    settings = make_settings(tmp_path / "s")
    store = open_store(settings, for_writing=True)
    ingester = Ingester(store, embed, settings.chunking)
    records = tmp_path / "a.jsonl"

    def ingest(n: int) -> None:
        rows = ({"id": f"2501.{i:05d}", "abstract": f"Method {i} for sparse kernels."} for i in range(n))
        records.write_text("".join(json.dumps(row) + "\n" for row in rows))
        ingester.ingest([records])

    ingest(1)
    bot = Assistant(settings, embed_model=embed, store=store)
    assert bot.min_score() == pytest.approx(0.38)
    ingest(10)
    # The same Assistant: the store's change counter moved, so the papers were counted again.
    assert bot.min_score() == pytest.approx(0.38 + 0.07)
    assert bot.min_score("bm25") == pytest.approx(0.38 + 0.07)


def test_filters_object_passes_through() -> None:
    value = Filters(categories=("cs.CL",))
    assert Filters.make(value) is value
    assert Filters.make({"categories": "cs.CL, cs.*"}).categories == ("cs.CL", "cs.*")
    assert not Filters.make(None)


# --- the levers of issue #27 (docs/retrieval-levers.md): off by default, each switchable ---

QUESTIONS = [
    "superconductivity in thin films at low temperature",
    "photon pairs at hadron colliders",
    "graphs graphs and counting automata",  # a repeated word counts twice, as in bm25s
    "qwxzv",  # no known stem: no hits
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_keyword_search_scores_as_llama_index_bm25(head200: Assistant, question: str) -> None:
    from llama_index.core.schema import QueryBundle
    from llama_index.retrievers.bm25 import BM25Retriever

    index = head200._retriever().keyword_index()
    ours = keyword.KeywordRetriever(head200.store, index, 15, None).retrieve(QueryBundle(question))
    [view] = index.views
    theirs = BM25Retriever(
        existing_bm25=view,
        stemmer=keyword.stemmer(),
        similarity_top_k=15,
        token_pattern=keyword.TOKEN_PATTERN,
    ).retrieve(question)
    theirs = [h for h in theirs if (h.score or 0) > 0]
    assert [h.node.node_id for h in ours] == [h.node.node_id for h in theirs]
    assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], rel=1e-5)


@pytest.mark.parametrize("mode", ["dist_based_score", "relative_score", "reciprocal_rerank"])
def test_fusion_ranks_as_llama_index_query_fusion(head200: Assistant, mode: str) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import QueryBundle

    from assistant.retrieve.fusion import fuse

    retrieval = head200._retriever()
    question = "superconductivity in thin films at low temperature"
    bundle = QueryBundle(question, embedding=head200.embed_model.get_query_embedding(question))
    index = retrieval.keyword_index()

    def rankings() -> list:  # type: ignore[type-arg]
        return [retrieval._dense(15, None), keyword.KeywordRetriever(head200.store, index, 15, None)]

    weights = [0.3, 0.7] if mode != "reciprocal_rerank" else [0.5, 0.5]
    theirs = QueryFusionRetriever(
        rankings(),
        llm=MockLLM(),
        mode=mode,
        similarity_top_k=15,
        num_queries=1,
        use_async=False,  # type: ignore[arg-type]
        retriever_weights=weights,
    ).retrieve(bundle)
    ours = fuse([r.retrieve(bundle) for r in rankings()], weights, mode)[:15]
    assert [h.node.node_id for h in ours] == [h.node.node_id for h in theirs]
    assert [h.score for h in ours] == pytest.approx([h.score for h in theirs])


@pytest.mark.parametrize(
    ("question", "kept"),
    [
        ("Are there any papers that propose sparse attention kernels?", "sparse attention kernels"),
        (
            "I am looking for work on contrastive pretraining for retrieval.",
            "contrastive pretraining retrieval",
        ),
        ("Provide me with some recent research papers on graph neural networks", "graph neural networks"),
        ("Which methods reduce label noise?", "reduce label noise"),
        # statements and topics keep every word (SciFact's claims, titles)
        ("Taxation of sugar-sweetened beverages had no effect on obesity", None),
        ("A study on the proposal distribution", "the proposal distribution"),
        ("Are there any papers?", None),  # nothing but scaffolding: the question as it is
    ],
)
def test_scaffolding_leaves_the_keyword_query_its_topic(question: str, kept: str | None) -> None:
    from assistant.retrieve.feedback import keyword_query

    assert keyword.stems(keyword_query(question, "off")) == keyword.stems(question)
    words = keyword.stems(keyword_query(question, "words"))
    assert words == keyword.stems(kept or question)
    # phrases alone keep the question words BM25's stopwords miss ("some", "which")
    assert set(words) <= set(keyword.stems(keyword_query(question, "phrases")))


def test_rm3_and_rocchio_mix_in_the_feedback_by_their_share() -> None:
    from assistant.retrieve.feedback import rm3, rocchio

    texts = ["kernels kernels for sparse attention on gpus", "attention kernels", "unrelated cooking"]
    mixed = rm3({"spars": 1.0, "attent": 1.0}, texts, [2.0, 1.0, 0.0], n_terms=3, weight=0.4)
    assert sum(mixed.values()) == pytest.approx(1.0)
    assert set(mixed) == {"spars", "attent", "kernel"}  # the unscored paper adds nothing
    assert mixed["kernel"] > mixed["spars"] - 0.3  # the query's two stems share 0.6; kernels weigh most
    assert rm3({"a": 1.0}, texts, [1, 1, 1], n_terms=3, weight=0.0) == {"a": 1.0}
    query, others = [1.0, 0.0], [[0.0, 1.0], [0.0, 1.0]]
    assert rocchio(query, others, 0.0) == pytest.approx(query)
    assert rocchio(query, others, 1.0) == pytest.approx([0.0, 1.0])
    assert rocchio(query, others, 0.5) == pytest.approx([2**-0.5, 2**-0.5])


def test_pseudo_relevance_feedback_searches_again_and_scores_by_the_question(head200: Assistant) -> None:
    question = "superconductivity in thin films at low temperature"
    before = head200.retrieve(question, top_k=10)
    retrieval = head200.settings.retrieval
    retrieval.feedback_papers, retrieval.rm3_weight, retrieval.rocchio_weight = 3, 0.5, 0.5
    try:
        after = head200.retrieve(question, top_k=10)
    finally:
        retrieval.feedback_papers, retrieval.rm3_weight, retrieval.rocchio_weight = 0, 0.0, 0.0
    assert len(after) == 10 and ids(after) != ids(before)
    # Each passage keeps its cosine to the question itself (the relevance threshold reads it).
    vector = np.asarray(head200.embed_model.get_query_embedding(question), dtype=np.float32)
    chunk_ids = [f"{p.arxiv_id}#{i}" for p in after for i in range(8)]
    stored = head200.store.get_chunks(chunk_ids, embeddings=True)
    for passage in after:
        cosines = [
            float(np.dot(vector, np.asarray(record["embedding"], dtype=np.float32)))
            for chunk_id, record in stored.items()
            if chunk_id.startswith(f"{passage.arxiv_id}#") and record["document"] in passage.text
        ]
        assert cosines and passage.score == pytest.approx(cosines[0], abs=1e-4)


def test_other_bm25_parameters_get_their_own_keyword_index(
    tmp_path: Path, embed: MiniLMEmbedding, data_dir: Path
) -> None:
    from assistant.store.folder import KEYWORD_FOLDER, foreign, leftovers

    settings = make_settings(tmp_path / "s")
    Ingester(open_store(settings, for_writing=True), embed, settings.chunking).ingest(
        [data_dir / "formats" / "kaggle-snapshot-head200.jsonl"]
    )
    question = "superconductivity in thin films at low temperature"
    default = Assistant(settings, embed_model=embed).retrieve(question, top_k=10, retriever="bm25")
    other = make_settings(tmp_path / "s", **{"retrieval.bm25_k1": 0.3, "retrieval.bm25_b": 0.2})
    bot = Assistant(other, embed_model=embed)
    found = bot.retrieve(question, top_k=10, retriever="bm25")
    assert found and [p.metadata["rank_score"] for p in found] != [p.metadata["rank_score"] for p in default]
    folders = sorted(p.name for p in (tmp_path / "s").iterdir() if p.name.startswith(KEYWORD_FOLDER))
    assert folders == [KEYWORD_FOLDER, f"{KEYWORD_FOLDER}.lucene-k1_0.3-b_0.2"]
    assert set(folders) <= set(leftovers(tmp_path / "s")) and not foreign(tmp_path / "s")
    # The default index is untouched: the default settings still find what they found.
    again = Assistant(settings, embed_model=embed).retrieve(question, top_k=10, retriever="bm25")
    assert ids(again) == ids(default)


@pytest.mark.parametrize(
    ("text", "asking"),
    [
        ("What is CheckList?", True),
        ("How can reinforcement learning improve medical diagnosis", True),
        ("Provide me with some recent papers on graph neural networks.", True),
        ("I am looking for work on sparse attention", True),
        ("Taxation of sugar-sweetened beverages had no effect on obesity.", False),  # a claim
        ("sparse attention kernels", False),  # keywords
        ("Why Are You Wrong? Counterfactual Explanations for Language Grounding", False),  # a title pasted in
    ],
)
def test_questions_and_requests_are_told_from_claims_titles_and_keywords(text: str, asking: bool) -> None:
    from assistant.retrieve.feedback import is_request

    assert is_request(text) is asking


def test_question_dense_shift_moves_questions_only(head200: Assistant) -> None:
    question, statement = (
        "Which papers study superconductivity in thin films?",
        "superconductivity in thin films",
    )
    dense = {q: ids(head200.retrieve(q, top_k=5, retriever="dense")) for q in (question, statement)}
    hybrid = ids(head200.retrieve(statement, top_k=5))
    retrieval = head200.settings.retrieval
    retrieval.question_dense_shift = 0.7  # 0.3 + 0.7: a question is ranked by the dense side alone
    try:
        assert ids(head200.retrieve(question, top_k=5)) == dense[question]
        assert ids(head200.retrieve(statement, top_k=5)) == hybrid != dense[statement]
    finally:
        retrieval.question_dense_shift = 0.0


def test_the_settings_default_bm25_parameters_are_the_default_index() -> None:
    # One default: the settings' BM25 parameters are those whose index lives in `keyword/`.
    from assistant.config_retrieval import RetrievalSettings
    from assistant.store.bm25 import BM25Params

    assert BM25Params.of(RetrievalSettings()) == BM25Params()
    assert BM25Params().folder("keyword") == "keyword"
