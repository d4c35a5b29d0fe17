"""The web chat's page: Gradio Blocks and their callbacks over one `Assistant`; thin, it only formats."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import gradio as gr

from assistant.bibliography import answer_json, references
from assistant.errors import AssistantError
from assistant.llms.llamacpp import LlamaCppChat
from assistant.mcp.tools import TOOLS, PaperTools
from assistant.pipeline import Assistant
from assistant.retrieve import RETRIEVERS
from assistant.schema import Answer, Paper
from assistant.store.papers import check_id
from assistant.streams import driven
from assistant.web.render import (
    COPY_BIBTEX_JS,
    EMPTY_PANEL,
    SAVE_CHAT_JS,
    SEARCHING,
    SIMILAR_JS,
    VERIFYING,
    escape_markdown,
    history_messages,
    references_html,
    reply_markdown,
    similar_html,
    sources_html,
)
from assistant.web.transcript import chat_markdown

# Questions the bundled abstracts answer, each with the paper it is about.
EXAMPLES = {
    "How much cheaper is simulated human feedback than crowdworkers?": "2305.14387",
    "What is AdaScale SGD?": "2007.05105",
    "How can NLP models be tested beyond held-out accuracy?": "2005.04118",
    "How can 3D structure be learned from images without 3D supervision?": "2006.07630",
}
# The concurrency group of every event that answers a question: `serve.concurrency` bounds them
# together. Retrieval is safe to run in parallel once warmed up (onnxruntime sessions and Chroma
# reads are thread-safe; the lazy set-up is done before launch), and a hosted model mostly waits
# on the network, so several run together (bench/load.py measures it). An in-process llama.cpp
# model is not thread-safe: its generation is serialized by a lock (see `WebChat`).
ANSWERING = "answering"
# Beyond this many waiting requests, new ones are refused at once rather than waiting minutes.
QUEUE_SIZE = 32
HEARTBEAT_SECONDS = 0.5  # how soon a closed tab's stream can be closed by Gradio (streams.driven)


def _filters(categories: str, since: str, until: str, author: str) -> dict[str, Any]:
    return {"categories": categories, "since": since, "until": until, "author": author}


class WebChat:
    """The chat's callbacks over one shared `Assistant`."""

    def __init__(self, bot: Assistant) -> None:
        self.bot = bot
        # llama.cpp keeps one decoding state per model: one answer at a time uses it, start to end.
        # (`bot.llm` loads a local model now, so the first question does not wait for it.)
        self._generating = threading.Lock() if isinstance(bot.llm, LlamaCppChat) else None

    def warm_up(self) -> None:
        """Do the one-time lazy set-up now, in one thread, so parallel requests find it done."""
        self.bot.ensure_indexed()
        self.bot.retrieve("warm up", 1, retriever="hybrid")  # loads the model and both indexes

    def answers(
        self,
        message: str,
        history: Sequence[Any] | None,
        *,
        top_k: Any = None,  # anything a client sends: `Assistant` checks it (retrieve/limits.py)
        filters: dict[str, Any] | None = None,
        retriever: str | None = None,
    ) -> Iterator[str | Answer | None]:
        """Yield the reply's text pieces, then the verified `Answer`; follow-ups read `history`.

        None comes every HEARTBEAT_SECONDS while nothing else does: Gradio can close the stream of a
        closed tab only between items, and closing it stops the model (streams.driven).
        """
        yield from driven(
            lambda: self.bot.stream(
                message, history=history, top_k=top_k, filters=filters, retriever=retriever or None
            ),
            self._generating,
            heartbeat=HEARTBEAT_SECONDS,
        )

    def respond(
        self,
        message: str,
        history: list[dict[str, Any]],
        top_k: float,
        retriever: str,
        categories: str,
        since: str,
        until: str,
        author: str,
    ) -> Iterator[tuple[str, str]]:
        """Stream the chat reply as Markdown, with the sources panel of the finished answer."""
        text = ""
        try:
            for item in self.answers(
                message,
                history_messages(history),
                top_k=top_k,
                filters=_filters(categories, since, until, author),
                retriever=retriever,
            ):
                if item is None:  # nothing new yet: the same view again
                    yield reply_markdown(text), VERIFYING if text else SEARCHING
                elif isinstance(item, Answer):
                    yield reply_markdown(item.text), sources_html(item) + references_html(references(item))
                else:  # a sentence whose citations are already verified: safe to link
                    text += item
                    yield reply_markdown(text), VERIFYING
        except AssistantError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def similar(
        self, top_k: float, categories: str, since: str, until: str, author: str, event: gr.EventData
    ) -> str:
        """Render the papers most like the one whose "Similar papers" button was clicked."""
        arxiv_id = str(getattr(event, "arxiv_id", ""))  # sent by the button's script
        try:
            found = self.bot.similar(arxiv_id, int(top_k), filters=_filters(categories, since, until, author))
        except AssistantError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return similar_html(check_id(arxiv_id), found)

    def transcript(self, history: list[dict[str, Any]]) -> str:
        """Return the conversation as Markdown with its cited papers as references, for download."""

        def stored(arxiv_id: str) -> Paper | None:
            try:
                return self.bot.paper(arxiv_id)
            except AssistantError:  # deleted from the store since it was cited
                return None

        return chat_markdown(history_messages(history), stored)

    def api_chat(
        self,
        message: str,
        history: list[dict[str, Any]] | None = None,
        top_k: int | None = None,
        retriever: str | None = None,
        categories: str = "",
        since: str = "",
        until: str = "",
        author: str = "",
    ) -> dict[str, Any]:
        """Answer `message` (earlier role/content messages in `history`); return the answer as JSON."""
        try:
            *_, result = self.answers(
                message,
                history,
                top_k=top_k,
                filters=_filters(categories, since, until, author),
                retriever=retriever,
            )
        except AssistantError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        assert isinstance(result, Answer)
        return answer_json(result)


def _controls(bot: Assistant) -> list[str | gr.components.Component]:
    retrieval = bot.settings.retrieval
    return [
        gr.Slider(
            1, 20, value=retrieval.top_k, step=1, label="Papers to retrieve", elem_id="top_k", render=False
        ),
        gr.Radio(
            list(RETRIEVERS),
            value=retrieval.retriever,
            label="Retriever",
            info="dense: meaning (MiniLM); bm25: keywords; hybrid: both",
            elem_id="retriever",
            render=False,
        ),
        gr.Textbox(
            label="Categories", placeholder="cs.CL, cs.* (empty: all)", elem_id="categories", render=False
        ),
        gr.Textbox(label="Since", placeholder="YYYY-MM-DD", elem_id="since", render=False),
        gr.Textbox(label="Until", placeholder="YYYY-MM-DD", elem_id="until", render=False),
        gr.Textbox(label="Author", placeholder="part of a name", elem_id="author", render=False),
    ]


def build(bot: Assistant, *, mcp: bool = False) -> gr.Blocks:
    """Build the chat page over `bot`: chat and controls on the left, the sources panel on the right.

    With `mcp`, the MCP tools (`mcp.tools.TOOLS`) are API endpoints too, for Gradio's MCP server.
    """
    # Gradio reports usage and checks for updates unless told not to (it reads this when it would).
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    concurrency = bot.settings.serve.concurrency
    web = WebChat(bot)
    web.warm_up()  # first: it may index the bundled abstracts into an empty store
    papers = bot.store.paper_count()
    stored = bot.store.fingerprints(list(EXAMPLES.values()))
    examples = [[q] for q, arxiv_id in EXAMPLES.items() if arxiv_id in stored]
    store, backend = escape_markdown(str(bot.store.path)), escape_markdown(bot.backend)
    sources = gr.HTML(EMPTY_PANEL, label="Sources", elem_id="sources", render=False, js_on_load=SIMILAR_JS)
    controls = _controls(bot)
    with gr.Blocks(title="arXiv assistant", analytics_enabled=False, fill_height=True) as app:
        gr.Markdown(
            f"### arXiv assistant\nAnswers from {papers:,} abstracts in {store}, written by **{backend}**;"
            " every \\[arXiv:ID\\] is checked against the retrieved papers.",
            elem_id="header",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat",
                    elem_id="chat",
                    height=520,
                    latex_delimiters=[],  # abstracts' `$...$` would otherwise be half-rendered
                    buttons=["copy", "copy_all"],
                    placeholder="Ask about the indexed abstracts; answers cite the papers they rest on.",
                )
                chat = gr.ChatInterface(
                    web.respond,
                    chatbot=chatbot,
                    textbox=gr.Textbox(
                        placeholder="Ask a question…",
                        elem_id="question",
                        submit_btn=True,
                        stop_btn=True,
                        render=False,
                    ),
                    additional_inputs=controls,
                    additional_inputs_accordion=gr.Accordion("Search settings", open=False, render=False),
                    additional_outputs=[sources],
                    examples=examples or None,
                    fill_height=False,
                    analytics_enabled=False,
                    # The public endpoint is `/chat` below; this one returns Markdown for the page.
                    api_name="respond",
                    api_visibility="private",
                    concurrency_limit=concurrency,
                )
                clear = gr.Button("Clear chat", variant="secondary", size="sm", elem_id="clear")
            with gr.Column(scale=2):
                gr.Markdown("#### Sources")
                with gr.Row():
                    bibtex = gr.Button("BibTeX", size="sm", elem_id="bibtex")
                    download = gr.Button("Download chat", size="sm", elem_id="download")
                notice = gr.Markdown(elem_id="notice")
                sources.render()
                similar = gr.HTML("", elem_id="similar", js_on_load=SIMILAR_JS)
        transcript = gr.Textbox(visible=False)
        private: dict[str, Any] = {"api_visibility": "private"}
        # The BibTeX is already in the page: copied at the click itself, as browsers want.
        bibtex.click(None, None, notice, js=COPY_BIBTEX_JS, **private)
        download.click(web.transcript, chatbot, transcript, queue=False, **private).then(
            None, transcript, None, js=SAVE_CHAT_JS, **private
        )
        # Papers to retrieve and the filters (not the retriever: similar papers are found by vector).
        searching = cast(list[gr.components.Component], [controls[0], *controls[2:]])
        for panel in (sources, similar):
            panel.click(
                web.similar,
                searching,
                similar,
                scroll_to_output=True,
                concurrency_limit=concurrency,
                **private,
            )
        clear.click(
            lambda: ([], [], EMPTY_PANEL, "", ""),
            None,
            [chatbot, chat.chatbot_state, sources, similar, notice],
            queue=False,
            api_visibility="private",
        )
        chatbot.clear(lambda: EMPTY_PANEL, None, sources, queue=False, api_visibility="private")
        chat.textbox.submit(lambda: SEARCHING, None, sources, queue=False, api_visibility="private")
        gr.api(web.api_chat, api_name="chat", concurrency_limit=concurrency, concurrency_id=ANSWERING)
        if mcp:
            tools = PaperTools(bot, web._generating or contextlib.nullcontext())
            for name in TOOLS:
                # Unqueued: Gradio's MCP server calls a queued tool back through gradio_client, which
                # cannot log in when --auth is set; an unqueued one it calls directly.
                gr.api(_tool(getattr(tools, name)), api_name=name, queue=False)
    _one_pool(app)
    app.queue(max_size=QUEUE_SIZE)
    return app


class ToolError(gr.Error):
    """A `gr.Error` that reads as its message: MCP clients get `str()` of it, which Gradio quotes."""

    def __str__(self) -> str:
        return str(self.message)


def _tool(fn: Callable[..., str]) -> Callable[..., str]:
    """Wrap an MCP tool so that a user's mistake is a one-line tool error (name, hints, docstring kept)."""

    @functools.wraps(fn)
    def tool(*args: Any, **kwargs: Any) -> str:
        try:
            return fn(*args, **kwargs)
        except AssistantError as exc:
            raise ToolError(str(exc), print_exception=False) from None

    return tool


def _one_pool(app: gr.Blocks) -> None:
    """Put every event given a concurrency limit (those that answer) in the `ANSWERING` group.

    ChatInterface makes several answering events (submit, retry, its page API) and takes no
    `concurrency_id`: each would get its own pool, several times `serve.concurrency` in all.
    """
    for fn in app.fns.values():
        if isinstance(fn.concurrency_limit, int):
            fn.concurrency_id = ANSWERING
