"""Citation export: BibTeX (bibtexparser), RIS (rispy) and Markdown for papers; an answer's references."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import bibtexparser
import rispy
from bibtexparser.middlewares import MergeCoAuthors
from bibtexparser.model import Entry, Field

from assistant.schema import Answer, Paper
from assistant.store.records import paper_from_metadata

FORMATS = ("bibtex", "ris", "markdown")
ABS_URL = "https://arxiv.org/abs/{}"
# Words left out of a citation key, as arXiv's own keys do ("beyond2020..." would say nothing).
# fmt: off
_STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "beyond", "by", "can", "do", "does", "for", "from",
    "how", "in", "into", "is", "it", "its", "of", "on", "or", "our", "the", "their", "to",
    "toward", "towards", "under", "via", "we", "what", "when", "where", "which", "why", "with",
    "without",
))
# fmt: on
_WORD = re.compile(r"[a-z0-9]+")
_RAW_PERCENT = re.compile(r"(?<!\\)%")
# BibTeX splits an author list at every " and " (any case), also inside one name.
_AND = re.compile(r"\sand\s", re.IGNORECASE)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")
# A Markdown reference names this many authors, then "et al." (collaborations list hundreds).
MARKDOWN_AUTHORS = 10


def plain(latex: str) -> str:
    """Return arXiv's LaTeX-flavoured text (titles, names) as plain Unicode: `Bal\\'azs` -> `Balázs`."""
    from pylatexenc.latex2text import LatexNodes2Text

    # A bare % would start a LaTeX comment and swallow the rest of the title.
    text = LatexNodes2Text().latex_to_text(_RAW_PERCENT.sub(r"\\%", latex))
    return " ".join(text.split())


def _value(value: str) -> str:
    """Return `value` as a BibTeX value can hold it: braces balanced (else all dropped), `%` escaped."""
    value = _RAW_PERCENT.sub(r"\\%", value)  # LaTeX would take the rest of the title for a comment
    depth = 0
    for char in value:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            break
    return value if depth == 0 else value.replace("{", "").replace("}", "")


def _name(name: str) -> str:
    """Return an author's name for BibTeX: one with " and " inside (`Smith 1 and 2`) braced whole."""
    name = _value(name)
    return f"{{{name}}}" if _AND.search(name) else name


def _ascii_words(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", plain(text)).encode("ascii", "ignore").decode().lower()
    return _WORD.findall(folded)


def citation_key(paper: Paper) -> str:
    """Return an arXiv-style key: first author's surname, year, first title words (`ribeiro2020accuracy...`).

    Papers without an author and a title (the bundled abstracts) get `arXiv:ID`.
    """
    surname = (_ascii_words(paper.authors[0]) or [""])[-1] if paper.authors else ""
    words = [w for w in _ascii_words(paper.title or "") if w not in _STOP_WORDS][:3]
    if not surname or not words:
        return f"arXiv:{paper.arxiv_id}"
    return f"{surname}{(paper.date or '')[:4]}{''.join(words)}"


def _bibtex_fields(paper: Paper) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = []
    if paper.title:
        fields.append(("title", _value(paper.title)))
    if paper.authors:
        fields.append(("author", [_name(name) for name in paper.authors]))  # joined with "and"
    if paper.date:
        fields.append(("year", paper.date[:4]))
    fields += [("eprint", paper.arxiv_id), ("archivePrefix", "arXiv")]
    if paper.categories:
        fields.append(("primaryClass", paper.categories[0]))
    if paper.doi:
        fields.append(("doi", _value(paper.doi)))
    if paper.journal_ref:
        fields.append(("note", _value(paper.journal_ref)))  # the field every style prints for @misc
    fields.append(("url", ABS_URL.format(paper.arxiv_id)))
    return fields


def bibtex(papers: Sequence[Paper]) -> str:
    """Return one `@misc` entry per paper, as arXiv's "Export BibTeX citation" writes them."""
    library = bibtexparser.Library()
    keys: set[str] = set()
    for paper in papers:
        key = citation_key(paper)
        if key in keys:  # two papers alike in author, year and title words
            key = f"arXiv:{paper.arxiv_id}"
        keys.add(key)
        library.add(Entry("misc", key, [Field(name, value) for name, value in _bibtex_fields(paper)]))
    layout = bibtexparser.BibtexFormat()
    layout.indent = "  "
    layout.trailing_comma = True
    layout.block_separator = "\n"
    return str(
        bibtexparser.write_string(library, prepend_middleware=[MergeCoAuthors()], bibtex_format=layout)
    )


class _RisWriter(rispy.RisWriter):
    """rispy's writer without the "1." line it puts before each record, which is no RIS tag."""

    def set_header(self, count: int) -> str:
        return ""


def ris(papers: Sequence[Paper]) -> str:
    """Return one RIS record per paper (type UNPB: a preprint), for Zotero, EndNote, Mendeley."""
    records = []
    for paper in papers:
        fields: dict[str, Any] = {
            "type_of_reference": "UNPB",
            "title": plain(paper.title) if paper.title else None,
            "authors": [plain(name) for name in paper.authors] or None,
            "year": paper.date[:4] if paper.date else None,
            "date": paper.date.replace("-", "/") if paper.date else None,
            "publisher": "arXiv",
            "accession_number": f"arXiv:{paper.arxiv_id}",
            "doi": paper.doi,
            "urls": [ABS_URL.format(paper.arxiv_id)],
            "keywords": list(paper.categories) or None,
            "notes": [paper.journal_ref] if paper.journal_ref else None,
            "abstract": paper.abstract,
        }
        records.append({key: value for key, value in fields.items() if value is not None})
    return str(rispy.dumps(records, implementation=_RisWriter))


def markdown_entry(paper: Paper) -> str:
    """Return one paper as a Markdown reference: authors (year). *Title*. linked arXiv id [class]."""
    names = [plain(name) for name in paper.authors]
    if len(names) > MARKDOWN_AUTHORS:
        names = [*names[:MARKDOWN_AUTHORS], "et al."]
    parts = []
    if names:
        parts.append(_md(", ".join(names)) + (f" ({paper.date[:4]})." if paper.date else "."))
    elif paper.date:
        parts.append(f"({paper.date[:4]}).")
    if paper.title:
        parts.append(f"*{_md(plain(paper.title))}*.")
    where = f"[arXiv:{paper.arxiv_id}]({ABS_URL.format(paper.arxiv_id)})"
    parts.append(where + (f" \\[{_md(paper.categories[0])}\\]." if paper.categories else "."))
    if paper.journal_ref:
        parts.append(f"{_md(paper.journal_ref)}.")
    if paper.doi:
        parts.append(f"doi:{_md(paper.doi)}")
    return " ".join(parts)


def _md(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown(papers: Sequence[Paper]) -> str:
    """Return a Markdown list of references, one paper per item."""
    return "".join(f"- {markdown_entry(paper)}\n" for paper in papers)


WRITERS: dict[str, Callable[[Sequence[Paper]], str]] = {"bibtex": bibtex, "ris": ris, "markdown": markdown}


def references(result: Answer) -> list[str]:
    """Return one BibTeX entry per cited paper of an answer, in citation order, from its passages."""
    passages = {p.arxiv_id: p for p in result.passages}
    return [
        bibtex([paper_from_metadata({**passages[i].metadata, "arxiv_id": i}, passages[i].text)]).strip()
        for i in result.citations
        if i in passages  # always: citations are verified against the passages
    ]


def answer_json(result: Answer) -> dict[str, Any]:
    """Return the JSON of `assistant ask --json`: the answer with a BibTeX entry per cited paper."""
    return {**result.to_dict(), "references": references(result)}
