"""A conversation as a Markdown file: each question and answer, then the cited papers as references."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from assistant.bibliography import ABS_URL, markdown
from assistant.schema import Paper
from assistant.sources.citations import parse_citations

# A verified citation as the answer text carries it, linked to the paper's page in the file.
_MARKER = re.compile(r"\[arXiv:([^\]\s]+)\]")
SPEAKERS = {"user": "Question", "assistant": "Answer"}


def chat_markdown(messages: Sequence[Mapping[str, str]], paper: Callable[[str], Paper | None]) -> str:
    """Return the chat as Markdown; `paper` looks up each cited id (None: not stored, cited by id only)."""
    lines = ["# Chat with the arXiv assistant", ""]
    cited: dict[str, None] = {}
    for message in messages:
        text = message["content"].strip()
        if message["role"] == "assistant":
            cited.update(dict.fromkeys(parse_citations(text)))
            text = _MARKER.sub(lambda m: f"[arXiv:{m[1]}]({ABS_URL.format(m[1])})", text)
        lines += [f"**{SPEAKERS[message['role']]}:** {text}", ""]
    if cited:
        lines += ["## References", "", markdown([paper(i) or Paper(i, "") for i in cited])]
    return "\n".join(lines).rstrip() + "\n"
