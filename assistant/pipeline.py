"""`Assistant`: question -> retrieve -> answer -> verify citations -> `Answer`; and `answer()`."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.answering.followup import Known, from_conversation
from assistant.answering.generation import Clock, stream_answer
from assistant.answering.papers import overview_papers, stream_papers
from assistant.config import Settings
from assistant.embeddings import MiniLMEmbedding, SentenceCache, default_embedding, store_id
from assistant.embeddings import resolve as resolve_embedding
from assistant.errors import AssistantError, InputError, StoreError
from assistant.ingest import Ingester, bundled_corpus
from assistant.llms import Backend, resolve, resolve_judge
from assistant.retrieve import Filters, Retrieval
from assistant.retrieve.condense import cited_papers, condense, is_follow_up
from assistant.retrieve.kinds import (
    COMPARISON,
    OVERVIEW,
    SINGLE,
    Kind,
    comparison_sides,
    overview_topic,
    question_kind,
    side_match,
)
from assistant.retrieve.limits import (
    Search,
    check_filters,
    check_history,
    check_question,
    check_search,
    check_top_k,
)
from assistant.retrieve.rerank import Reranker
from assistant.retrieve.sentences import score_sentences
from assistant.schema import Answer, Paper, Passage
from assistant.store import Store
from assistant.store.bm25 import BM25Params
from assistant.store.papers import paper_vector, stored_paper, stored_passage

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.llms.llm import LLM

DEFAULT_STORE = Path("index_store")


class Assistant:
    """Answers questions from one store; build it once and ask many times.

    Two models: `embed_model` embeds the store and the questions (`embedding.model`, the bundled
    MiniLM by default); `sentence_model`, always the bundled MiniLM, scores sentences for the rerank
    stage, the relevance threshold and the answer (the thresholds are MiniLM cosines). With MiniLM
    as the embedding they are one model.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embed_model: BaseEmbedding | None = None,
        sentence_model: MiniLMEmbedding | None = None,
        store: Store | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        embedding = self.settings.embedding
        # Resolved first: a bad `--llm`, `--embedding` or `--rerank` fails before anything slow is loaded.
        self._backend = backend or resolve(self.settings.answer)
        self.judge = resolve_judge(self.settings.answer, self._backend)
        choice = resolve_embedding(self.settings)
        self.reranker = Reranker(
            self.settings.retrieval.rerank, backend=self._backend, timeout=embedding.timeout
        )
        self.embed_model = embed_model or choice.build()
        if isinstance(self.embed_model, MiniLMEmbedding):
            self.embed_model.batch_tokens = embedding.batch_tokens
        self.sentence_model = sentence_model or (
            self.embed_model
            if isinstance(self.embed_model, MiniLMEmbedding)
            else default_embedding(embedding.threads, embedding.batch_tokens)
        )
        self.store = store or open_store(self.settings, for_writing=False)
        self._retrieval: Retrieval | None = None
        self._indexed = False
        self._papers: tuple[int, int] | None = None  # (store change counter, papers then)

    @property
    def backend(self) -> str:
        """Name the configured answerer (an `Answer` says `extractive` if it had to fall back)."""
        return self._backend.name

    @property
    def llm(self) -> LLM | None:
        """Return the generative model (loaded on first use), or None for the extractive answerer."""
        return None if self._backend.extractive else self._backend.llm()

    def ensure_indexed(self) -> None:
        """Index the bundled abstracts into an empty default store (saying so); refuse any other empty one."""
        if self._indexed:
            return  # counting costs 8 ms a question at 75k papers; a store seen filled stays so
        if self.store.count() == 0:
            if not is_default(self.store):
                how = "in server mode" if self.store.server else f"--store {self.store.path}"
                raise StoreError(
                    f"the store {self.store.where} is empty: add papers with `assistant ingest FILE` {how}"
                )
            print(
                f"{self.store.path} is empty: indexing the bundled abstracts (first run only)",
                file=sys.stderr,
            )
            Ingester(self.store, self.embed_model, self.settings.chunking).ingest(
                [bundled_corpus()], progress=True
            )
        self._indexed = True

    def min_score(self, retriever: str | None = None) -> float:
        """Return the relevance threshold of `retriever` for this store's size (see `RetrievalSettings`)."""
        generation = self.store.generation()
        if self._papers is None or self._papers[0] != generation:
            # Counting papers takes ~0.25 s at 75k: once per change of the store, not per question.
            self._papers = (generation, self.store.paper_count())
        return self.settings.retrieval.min_score(retriever, papers=self._papers[1])

    def _retriever(self) -> Retrieval:
        if self._retrieval is None:
            self._retrieval = Retrieval(self.store, self.embed_model, self.settings.retrieval)
        return self._retrieval

    def retrieve(
        self,
        question: str,
        top_k: int | None = None,
        *,
        filters: Filters | dict[str, Any] | None = None,
        retriever: str | None = None,
        sentences: SentenceCache | None = None,
    ) -> list[Passage]:
        """Return the best passage of each of the `top_k` most relevant papers that pass `filters`.

        With a rerank stage, `retrieval.rerank_candidates` fused papers are re-ordered first;
        `sentences` (this question's cache of sentence vectors) lets the answer stage re-use its work.
        """
        search = check_search(self.settings, question, top_k=top_k, retriever=retriever, filters=filters)
        return self._retrieve(search.question, search, sentences)

    def _retrieve(self, query: str, search: Search, sentences: SentenceCache | None = None) -> list[Passage]:
        self.ensure_indexed()
        wanted = search.top_k
        if self.reranker.active:
            wanted = max(wanted, self.settings.retrieval.rerank_candidates)
        candidates = self._retriever().retrieve(query, wanted, kind=search.retriever, filters=search.filters)
        return self.reranker.rerank(
            query, candidates, search.top_k, sentences or SentenceCache(self.sentence_model)
        )

    def paper(self, arxiv_id: str) -> Paper:
        """Return a stored paper's record (metadata and whole abstract); `InputError` if it is not stored."""
        self.ensure_indexed()
        return stored_paper(self.store, arxiv_id)

    def similar(
        self, arxiv_id: str, top_k: int | None = None, *, filters: Filters | dict[str, Any] | None = None
    ) -> list[Passage]:
        """Return the stored papers nearest to a stored one by its own stored vectors, leaving it out."""
        # The limits every entry point applies to a search's options.
        top_k = check_top_k(top_k, self.settings.retrieval.top_k)
        checked = check_filters(filters)
        self.ensure_indexed()
        arxiv_id, vector = paper_vector(self.store, arxiv_id)
        return self._retriever().nearest(vector, top_k, filters=checked, exclude=arxiv_id)

    def chat(
        self,
        message: str,
        history: Sequence[Any] | None = None,
        *,
        top_k: int | None = None,
        filters: Filters | dict[str, Any] | None = None,
        retriever: str | None = None,
    ) -> Answer:
        """Answer a message in a conversation: a follow-up is made stand-alone before retrieval."""
        return _final(
            self.stream(message, history=history, top_k=top_k, filters=filters, retriever=retriever)
        )

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Filters | dict[str, Any] | None = None,
        retriever: str | None = None,
        query: str | None = None,
    ) -> Answer:
        """Answer `question` from the store, citing only retrieved papers; `query` overrides the search."""
        return _final(self.stream(question, top_k=top_k, filters=filters, retriever=retriever, query=query))

    def stream(
        self,
        question: str,
        *,
        history: Sequence[Any] | None = None,
        top_k: int | None = None,
        filters: Filters | dict[str, Any] | None = None,
        retriever: str | None = None,
        query: str | None = None,
    ) -> Iterator[str | Answer]:
        """Yield the answer's text as it is generated, then the verified `Answer` as the last item.

        With `history`, a follow-up is first condensed into a stand-alone search `query`, and answered
        from the papers the conversation cited when they hold its answer (`answering.followup`).
        """
        clock = Clock(time.perf_counter())
        search = check_search(self.settings, question, top_k=top_k, retriever=retriever, filters=filters)
        history = check_history(history)
        # One cache per question: the sentences the rerank stage embedded are not embedded again.
        sentences = SentenceCache(self.sentence_model)
        min_score = self.min_score(search.retriever)
        known: Known | None = None
        if query is not None:
            query = check_question(query, self.settings.answer.max_question_chars)
        elif history:
            follow_up = is_follow_up(search.question)
            if follow_up and self.judge is not None:
                # The judge reads the conversation's papers whole: the follow-up needs no rewriting (which
                # costs a generation, and a small model's rewrite can lose what "it" was).
                known = self._from_conversation(search.question, history, search, sentences, min_score)
            if known is None:
                query = condense(search.question, history, llm=self.llm)
                if follow_up and self.judge is None:  # the rewrite's words decide relevance
                    known = self._from_conversation(query, history, search, sentences, min_score)
        text = query or search.question
        kind = question_kind(search.question) if known is None else SINGLE
        if kind == OVERVIEW:  # its topic, without "what do the papers say about", is searched and scored
            text = overview_topic(text)
        if kind != SINGLE:
            papers = self._several(kind, text, search, sentences, min_score)
            if papers is not None:
                passages, ranks = papers
                scores = score_sentences(text, passages, sentences)
                clock.mark("retrieval_s")
                yield from stream_papers(
                    self._backend,
                    search.question,
                    passages,
                    scores,
                    ranks or overview_papers(scores, min_score, self.settings.answer.max_papers),
                    kind=kind,
                    embed_model=sentences,
                    settings=self.settings.answer,
                    judge=self.judge,
                    query=query,
                    clock=clock,
                    form=self.settings.answer.paper_lines,
                )
                return
        if known is not None:
            passages, scores = known.passages, known.scores
        else:
            passages = self._retrieve(text, search, sentences)
            scores = score_sentences(text, passages, sentences)
        clock.mark("retrieval_s")
        yield from stream_answer(
            self._backend,
            search.question,
            passages,
            scores,
            embed_model=sentences,
            settings=self.settings.answer,
            min_score=known.min_score if known else min_score,
            judge=self.judge,
            abstract=lambda arxiv_id: stored_paper(self.store, arxiv_id).abstract,
            query=query,
            clock=clock,
            answerable=known.answerable if known else None,
            context=known.context if known else None,
        )

    def _several(
        self, kind: Kind, text: str, search: Search, sentences: SentenceCache, min_score: float
    ) -> tuple[list[Passage], list[int]] | None:
        """The passages (whole abstracts) of an overview, or a comparison's two papers and their ranks.

        A comparison's sides are found in the search for the whole question, or each searched on its
        own when it does not find both; None (answer as a single question) when a side is not found or
        both are one paper.
        """
        passages = self._retrieve(text, search, sentences)
        sides = comparison_sides(search.question) if kind == COMPARISON else None
        if sides is None:
            return (self._whole(passages), []) if kind == OVERVIEW else None
        pair: list[Passage] = []
        for side in sides:
            taken = {p.arxiv_id for p in pair}
            pool = [p for p in passages if p.arxiv_id not in taken]
            rank = side_match(side, pool, sentences, min_score)
            if rank is None:  # this side on its own
                pool = [p for p in self._retrieve(side, search, sentences) if p.arxiv_id not in taken]
                rank = side_match(side, pool, sentences, min_score)
            if rank is None:
                return None
            pair.append(pool[rank])
        return self._whole(pair), [0, 1]

    def _whole(self, passages: list[Passage]) -> list[Passage]:
        """The retrieved papers as whole abstracts (a long one was found by its best chunk)."""
        whole = []
        for p in passages:
            try:
                text = stored_passage(self.store, p.arxiv_id).text
            except AssistantError:  # deleted since, or an id of another form: its retrieved chunk
                text = p.text
            whole.append(Passage(p.arxiv_id, p.title, p.score, text, p.metadata))
        return whole

    def _from_conversation(
        self, query: str, history: Sequence[Any], search: Search, sentences: SentenceCache, min_score: float
    ) -> Known | None:
        """The papers the conversation cited, if they answer the follow-up `query` (and pass the filters)."""
        ids = cited_papers(history, limit=search.top_k)
        if not ids:
            return None
        self.ensure_indexed()

        def passage(arxiv_id: str) -> Passage:
            found = stored_passage(self.store, arxiv_id)
            if not search.filters.matches(found.metadata):  # a follow-up asked with filters keeps to them
                raise InputError(f"arXiv:{arxiv_id} does not pass the filters")
            return found

        return from_conversation(
            query,
            ids,
            passage,
            sentences,
            judge=self.judge,
            settings=self.settings.answer,
            min_score=min_score,
            local=not self._backend.hosted,
        )


def _final(pieces: Iterator[str | Answer]) -> Answer:
    """Run a `stream` to its end and return the `Answer` it ends with."""
    *_, result = pieces
    assert isinstance(result, Answer), "stream() always ends with the Answer"
    return result


def open_store(settings: Settings, *, for_writing: bool) -> Store:
    """Open the configured store; only ingest, or the default embedded ./index_store, may create it."""
    default = settings.store.mode == "embedded" and _default_folder(settings.store.path)
    model_id, bm25 = store_id(settings.embedding.model), BM25Params.of(settings.retrieval)
    return Store.from_settings(settings.store, model_id, create=for_writing or default, bm25=bm25)


def is_default(store: Store) -> bool:
    """Whether `store` is the default embedded ./index_store, the only one the bundled abstracts seed."""
    return store.server is None and _default_folder(store.path)


def _default_folder(path: Path) -> bool:
    return path.resolve() == DEFAULT_STORE.resolve()


def answer(
    question: str,
    *,
    top_k: int | None = None,
    filters: Filters | dict[str, Any] | None = None,
    retriever: str | None = None,
    settings: Settings | None = None,
) -> Answer:
    """Answer one question with the configured store (indexing the bundled abstracts if empty)."""
    return Assistant(settings).ask(question, top_k=top_k, filters=filters, retriever=retriever)
