"""`Assistant`: question -> retrieve -> answer -> verify citations -> `Answer`; and `answer()`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from assistant.citations import verify
from assistant.config import Settings
from assistant.embeddings import MODEL_ID, MiniLMEmbedding, default_embedding
from assistant.errors import InputError
from assistant.extractive import extractive_answer
from assistant.ingest import Ingester, bundled_corpus
from assistant.retrieval import DenseRetriever
from assistant.schema import Answer, Passage
from assistant.store import Store

DEFAULT_STORE = Path("index_store")


def check_question(question: Any, max_chars: int) -> str:
    """Return the question stripped, or raise `InputError` saying what is wrong with it."""
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty; ask something about the indexed abstracts")
    question = question.strip()
    if len(question) > max_chars:
        raise InputError(
            f"the question is {len(question):,} characters long; the limit is {max_chars:,} "
            "(answer.max_question_chars): ask a shorter question"
        )
    return question


class Assistant:
    """Answers questions from one store; build it once and ask many times."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embed_model: MiniLMEmbedding | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings or Settings.load()
        self.embed_model = embed_model or default_embedding(self.settings.embedding.threads)
        self.embed_model.batch_tokens = self.settings.embedding.batch_tokens
        self.store = store or open_store(self.settings, for_writing=False)
        self._retriever: DenseRetriever | None = None

    @property
    def backend(self) -> str:
        """Name the answerer in use."""
        return "extractive"

    def ensure_indexed(self) -> None:
        """Index the bundled abstracts into an empty store, saying so on stderr."""
        if self.store.count() == 0:
            print(
                f"{self.store.path} is empty: indexing the bundled abstracts (first run only)",
                file=sys.stderr,
            )
            Ingester(self.store, self.embed_model, self.settings.chunking).ingest(
                [bundled_corpus()], progress=True
            )

    def retrieve(self, question: str, top_k: int | None = None) -> list[Passage]:
        """Return the best passage of each of the `top_k` most relevant papers."""
        question = check_question(question, self.settings.answer.max_question_chars)
        self.ensure_indexed()
        if self._retriever is None:
            self._retriever = DenseRetriever(self.store, self.embed_model)
        return self._retriever.retrieve(question, top_k or self.settings.retrieval.top_k)

    def ask(self, question: str, *, top_k: int | None = None) -> Answer:
        """Answer `question` from the store, citing only retrieved papers."""
        question = check_question(question, self.settings.answer.max_question_chars)
        passages = self.retrieve(question, top_k)
        draft = extractive_answer(
            question,
            passages,
            self.embed_model,
            min_score=self.settings.retrieval.min_score,
            max_sentences=self.settings.answer.max_sentences,
        )
        checked = verify(draft, {p.arxiv_id for p in passages})
        return Answer(
            question=question,
            text=checked.text,
            citations=checked.citations,
            passages=passages,
            backend=self.backend,
            dropped_citations=checked.dropped,
        )


def open_store(settings: Settings, *, for_writing: bool) -> Store:
    """Open the configured store; only ingest, or the default ./index_store, may create it."""
    path = settings.store.path
    create = for_writing or path.resolve() == DEFAULT_STORE.resolve()
    return Store(path, settings.store.collection, MODEL_ID, create=create)


def answer(question: str, *, top_k: int | None = None, settings: Settings | None = None) -> Answer:
    """Answer one question with the configured store (indexing the bundled abstracts if empty)."""
    return Assistant(settings).ask(question, top_k=top_k)
