"""The MCP tools (`assistant serve --mcp`): typed functions over one `Assistant` that return JSON text.

Gradio's MCP server makes each function a tool named after it, with its type hints as the input
schema and its docstring (the `Args:` lines too) as what an MCP client shows; that is why these
docstrings are longer than one line. Each returns JSON text because Gradio hands an MCP client
`str()` of what a tool returns (a Python repr for a dict).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from typing import Any

from assistant.bibliography import ABS_URL, answer_json
from assistant.pipeline import Assistant
from assistant.store.papers import passage_record

TOOLS = ("search_papers", "ask", "get_paper")


def _filters(
    categories: list[str] | None, since: str | None, until: str | None, author: str | None
) -> dict[str, Any]:
    return {"categories": categories or (), "since": since, "until": until, "author": author}


class PaperTools:
    """The three MCP tools; answers share `generating` with the web chat (one llama.cpp state)."""

    def __init__(
        self, bot: Assistant, generating: contextlib.AbstractContextManager[Any] | None = None
    ) -> None:
        self.bot = bot
        self._generating = generating or contextlib.nullcontext()

    def search_papers(
        self,
        query: str,
        top_k: int = 5,
        categories: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        author: str | None = None,
    ) -> str:
        """Search the indexed arXiv abstracts (keywords and meaning) and return the best-matching papers.

        Returns JSON: a list of papers, best first, each with arxiv_id, title, authors, date (first
        listed), categories, score (cosine similarity to the query) and text (the passage that matched).

        Args:
            query: What to look for: a question, a title, a method's name or key terms.
            top_k: How many papers to return, best first.
            categories: Only papers in any of these arXiv categories: exact (cs.CL) or an archive (cs.*).
            since: Only papers first listed on or after this date, YYYY-MM-DD.
            until: Only papers first listed on or before this date, YYYY-MM-DD.
            author: Only papers with an author whose name contains this (case-insensitive).
        """
        found = self.bot.retrieve(query, top_k, filters=_filters(categories, since, until, author))
        return json.dumps([passage_record(p) for p in found], ensure_ascii=False)

    def ask(
        self,
        question: str,
        top_k: int = 5,
        categories: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        author: str | None = None,
    ) -> str:
        """Answer a question from the indexed arXiv abstracts, citing the papers it rests on as [arXiv:ID].

        Returns JSON: question, answer (every citation in it verified against the retrieved papers),
        citations (the cited ids), passages, backend, dropped_citations, grounded, warnings and
        references (one BibTeX entry per cited paper), as `assistant ask --json` prints it.

        Args:
            question: The question, in words.
            top_k: How many papers to retrieve and answer from.
            categories: Only papers in any of these arXiv categories: exact (cs.CL) or an archive (cs.*).
            since: Only papers first listed on or after this date, YYYY-MM-DD.
            until: Only papers first listed on or before this date, YYYY-MM-DD.
            author: Only papers with an author whose name contains this (case-insensitive).
        """
        with self._generating:
            result = self.bot.ask(question, top_k=top_k, filters=_filters(categories, since, until, author))
        return json.dumps(answer_json(result), ensure_ascii=False)

    def get_paper(self, arxiv_id: str) -> str:
        """Return one stored paper's record: its metadata and whole abstract; an error if it is not stored.

        Returns JSON: arxiv_id, abstract, title, authors, categories, date (first listed), comment,
        journal_ref, doi and url (its abstract page).

        Args:
            arxiv_id: The paper's arXiv id, e.g. 2005.04118, arXiv:2005.04118v2 or hep-th/9901001.
        """
        paper = self.bot.paper(arxiv_id)
        return json.dumps({**asdict(paper), "url": ABS_URL.format(paper.arxiv_id)}, ensure_ascii=False)
