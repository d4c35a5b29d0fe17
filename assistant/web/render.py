"""Answers as safe Markdown and HTML for the web chat; every untrusted text is escaped here."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from assistant.retrieve.sentences import sentences
from assistant.schema import Answer, Passage
from assistant.store.records import date_text

ABS_URL = "https://arxiv.org/abs/{}"
# A verified citation as `citations.verify` writes it: one id per marker.
_MARKER = re.compile(r"\[arXiv:([A-Za-z\-.]+/\d{7}|\d{4}\.\d{4,5})\]")
# Markdown syntax that could turn abstract or model text into links, images, HTML, code, tables or
# emphasis; `&`, `<`, `>` become entities first, so no raw HTML reaches the renderer. `:`, `.` and
# `@` too: the chat's Markdown (GFM) links bare `https://...`, `www.` and e-mail addresses, and
# the only links in an answer are to the verified citations' abstract pages.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()#!|~{}$:.@])")
_LINKED = re.compile(r"\[arXiv:([^\]]+)\]\(https://arxiv\.org/abs/[^)\s]+\)")
_LIST_ITEM = re.compile(r"^- ", re.MULTILINE)
_BACKSLASHED = re.compile(r"\\([\\`*_\[\]()#!|~{}$:.@])")

ENTAILMENT_TITLE = "the judge's probability that this paper entails the answer sentence resting on it"
VERIFYING = '<p class="aa-empty">Sources and the evidence behind the answer appear when it is done…</p>'
SEARCHING = '<p class="aa-empty">Searching the abstracts…</p>'
EMPTY_PANEL = '<p class="aa-empty aa-placeholder">Sources of the latest answer appear here.</p>'


def escape_markdown(text: str) -> str:
    """Make untrusted text render literally in Markdown: no HTML, links, images or formatting."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def reply_markdown(text: str, *, link: bool = True) -> str:
    """Render an answer's text as Markdown, its `[arXiv:ID]` markers as links to the abstract page.

    An answer of several lines (an overview or comparison: one cited line per paper) is a list.
    `link=False` is for text still being generated: its citations are not verified yet.
    """
    if "\n" in text:
        return "\n".join(f"- {_reply_line(line, link)}" for line in text.split("\n") if line.strip())
    return _reply_line(text, link)


def _reply_line(text: str, link: bool) -> str:
    out: list[str] = []
    start = 0
    for match in _MARKER.finditer(text) if link else ():
        arxiv_id = match.group(1)
        out.append(escape_markdown(text[start : match.start()]))
        out.append(f"[arXiv:{arxiv_id}]({ABS_URL.format(arxiv_id)})")
        start = match.end()
    out.append(escape_markdown(text[start:]))
    return "".join(out)


def plain_text(markdown: str) -> str:
    """Undo `reply_markdown`: the answer text as the pipeline wrote it, for follow-up questions."""
    if "\n" in markdown:  # a list: one line per paper
        markdown = _LIST_ITEM.sub("", markdown)
    text = _LINKED.sub(r"[arXiv:\1]", markdown)
    return html.unescape(_BACKSLASHED.sub(r"\1", text))


def message_text(content: Any) -> str:
    """Return the text of a chat message's content (a string or Gradio's list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, list | tuple):
        return " ".join(message_text(part) for part in content).strip()
    return ""


def history_messages(history: Sequence[Any] | None) -> list[dict[str, str]]:
    """Turn the chat's messages into the role/content dicts `Assistant.chat` reads, as plain text."""
    out = []
    for item in history or ():
        if isinstance(item, dict) and item.get("role") in ("user", "assistant"):
            text = message_text(item.get("content"))
            out.append(
                {"role": item["role"], "content": plain_text(text) if item["role"] == "assistant" else text}
            )
    return out


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _date(metadata: dict[str, Any]) -> str:
    return date_text(metadata.get("date")) or ""


def _categories(metadata: dict[str, Any]) -> str:
    value = metadata.get("categories") or ()
    return ", ".join(value) if isinstance(value, list | tuple) else str(value)


def passage_html(passage: Passage, cited: bool, evidence: Mapping[str, float | None] | None = None) -> str:
    """Render one retrieved paper: linked id, cited mark, title, date, categories, score, passage.

    The passage's sentences in `evidence` (those the answer rests on) are highlighted, each with the
    judge's probability that the paper entails the answer sentence resting on it, when judged.
    """
    url = ABS_URL.format(passage.arxiv_id)
    facts = [f"score {passage.score:.2f}", _date(passage.metadata), _categories(passage.metadata)]
    mark = '<span class="aa-cited">cited</span>' if cited else ""
    title = f'<div class="aa-title">{_e(passage.title)}</div>' if passage.title else ""
    return (
        f'<div class="aa-source{" aa-is-cited" if cited else ""}" data-arxiv-id="{_e(passage.arxiv_id)}">'
        f'<div class="aa-head"><a href="{_e(url)}" target="_blank" rel="noopener noreferrer">'
        f"arXiv:{_e(passage.arxiv_id)}</a> {mark}"
        f'<span class="aa-facts">{" · ".join(_e(f) for f in facts if f)}</span>'
        f'<button type="button" class="aa-similar" data-arxiv-id="{_e(passage.arxiv_id)}">'
        "Similar papers</button>"
        f'</div>{title}<div class="aa-passage">{_highlighted(passage.text, evidence)}</div></div>'
    )


def _highlighted(text: str, evidence: Mapping[str, float | None] | None) -> str:
    if not evidence:
        return _e(text)

    def mark(sentence: str) -> str:
        if sentence not in evidence:
            return _e(sentence)
        p = evidence[sentence]
        figure = (
            ""
            if p is None
            else f'<span class="aa-entailment" title="{ENTAILMENT_TITLE}">entailed {p:.2f}</span>'
        )
        return f'<mark class="aa-evidence">{_e(sentence)}</mark>{figure}'

    # The same sentence split the answer's support check used, so the evidence strings match.
    return " ".join(mark(s) for s in sentences(text))


def timing_text(result: Answer) -> str:
    """Say how long the answer took: retrieval, first token and total, as far as they are known."""
    names = (("retrieval_s", "retrieval"), ("first_token_s", "first token"), ("total_s", "total"))
    return ", ".join(f"{label} {result.timings[k]:.1f} s" for k, label in names if k in result.timings)


def notices(result: Answer) -> list[str]:
    """Say what the reader must know beyond the text: removed citations, grounding, fallbacks."""
    out = []
    if result.dropped_citations:
        removed = ", ".join(f"arXiv:{i}" for i in result.dropped_citations)
        out.append(f"Removed citations to papers that were not retrieved: {removed}.")
    if result.passages and result.citations and not result.grounded:
        out.append("Some statements cite no retrieved paper; check them against the sources.")
    out.extend(f"Withheld, {s.reason}: “{s.text}”" for s in result.unsupported)
    out.extend(result.warnings)
    return out


def sources_html(result: Answer) -> str:
    """Render the sources panel of one answer: who answered and how fast, notices, then each paper."""
    timing = timing_text(result)
    judged = result.sentences and result.verifier not in (result.backend, "extractive", "none")
    parts = [
        f'<p class="aa-backend">Answered by <b>{_e(result.backend)}</b>'
        f"{f' · checked by {_e(result.verifier)}' if judged else ''}"
        f"{f' · {_e(timing)}' if timing else ''}</p>"
    ]
    parts.extend(f'<p class="aa-notice">⚠ {_e(n)}</p>' for n in notices(result))
    if not result.passages:
        parts.append('<p class="aa-empty">No paper matched the question and filters.</p>')
    cited = set(result.citations)
    evidence: dict[str, dict[str, float | None]] = {}
    for sentence in result.sentences:
        for item in sentence.evidence:
            held = evidence.setdefault(item.arxiv_id, {})
            # Several answer sentences may rest on one: the lowest judgement is the one to show.
            known = [p for p in (held.get(item.sentence), sentence.entailment) if p is not None]
            held[item.sentence] = min(known) if known else None
    parts.extend(passage_html(p, p.arxiv_id in cited, evidence.get(p.arxiv_id)) for p in result.passages)
    return "\n".join(parts)


def references_html(entries: list[str]) -> str:
    """Hold the cited papers' BibTeX in the sources panel, hidden, for the "BibTeX" button to copy."""
    if not entries:
        return ""
    text = "\n\n".join(entries)
    return f'<pre class="aa-bibtex" hidden>{_e(text)}</pre>'


def similar_html(arxiv_id: str, passages: list[Passage]) -> str:
    """Render the papers nearest to `arxiv_id`, each with its own "Similar papers" button."""
    head = f'<p class="aa-backend">Papers like <b>arXiv:{_e(arxiv_id)}</b> (score: cosine to it)</p>'
    if not passages:
        return head + '<p class="aa-empty">No other stored paper passes the search settings.</p>'
    return head + "\n".join(passage_html(p, cited=False) for p in passages)


CSS = """
.aa-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
  margin-bottom: 8px; }
.aa-is-cited { border-left: 4px solid var(--color-accent); }
.aa-head { font-weight: 600; }
.aa-cited { background: var(--color-accent); color: white; border-radius: 4px; padding: 0 5px;
  font-size: 0.8em; margin-left: 4px; }
.aa-facts { font-weight: 400; color: var(--body-text-color-subdued); margin-left: 6px; font-size: 0.9em; }
.aa-title { font-style: italic; margin: 2px 0; }
.aa-passage { font-size: 0.9em; white-space: pre-wrap; max-height: 12em; overflow-y: auto; }
.aa-notice { color: var(--error-text-color, #b45309); margin: 4px 0; }
.aa-entailment { font-size: 0.75em; margin-left: 0.3em; opacity: 0.75; white-space: nowrap; }
.aa-evidence { background: var(--color-accent-soft, #fde68a); color: inherit; border-radius: 2px; }
.aa-backend, .aa-empty { color: var(--body-text-color-subdued); margin: 4px 0; }
.aa-similar { margin-left: 6px; font-size: 0.8em; font-weight: 400; cursor: pointer; padding: 0 6px;
  border: 1px solid var(--border-color-primary); border-radius: 4px;
  background: var(--button-secondary-background-fill); }
"""

# The sources and similar-papers panels' `js_on_load`: a "Similar papers" button sends its paper's id.
SIMILAR_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('.aa-similar');
  if (button) trigger('click', {arxiv_id: button.dataset.arxivId});
});
"""
# The "BibTeX" button: copy the latest answer's references (held in the sources panel); the result
# is the notice shown. Without the clipboard API (plain http to another host) the old way is used.
COPY_BIBTEX_JS = """
async () => {
  const block = document.querySelector('#sources .aa-bibtex');
  if (!block) return 'The latest answer cites no paper: nothing to copy.';
  const text = block.textContent;
  const count = (text.match(/^@/gm) || []).length;
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {
    const area = Object.assign(document.createElement('textarea'), {value: text});
    document.body.appendChild(area);
    area.select();
    const copied = document.execCommand('copy');
    area.remove();
    if (!copied) return 'The browser refused to copy; allow clipboard access for this page.';
  }
  return `Copied the BibTeX of ${count} cited paper${count === 1 ? '' : 's'}.`;
}
"""
# "Download chat": the Markdown the server wrote, saved as a file by the browser.
SAVE_CHAT_JS = """
(text) => {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([text], {type: 'text/markdown'}));
  link.download = 'arxiv-chat.md';
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
"""
