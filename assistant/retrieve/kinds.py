"""What kind of question this is: an overview of a topic, a comparison of two things, or a single question.

By rule (regular expressions over the wording): free, instant and testable; the kinds are worded in
recognisable ways ("what do the papers say about X", "which papers study X", "how do A and B differ",
"compare A with B", "A vs B"). A comparison also yields its two sides, each searchable on its own.
A question that is neither is `single`: it asks about one paper or one fact, as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from assistant.embeddings import TextEncoder
from assistant.retrieve.sentences import score_sentences
from assistant.schema import Passage

Kind = Literal["overview", "comparison", "single"]
OVERVIEW: Kind = "overview"
COMPARISON: Kind = "comparison"
SINGLE: Kind = "single"

# Plural nouns that name a body of work, not one paper.
_WORKS = r"(?:papers|works|studies|articles|publications|research|literature|abstracts|references)"
_APPROACHES = r"(?:approaches|methods|techniques|ideas|directions|lines of work|trends|solutions|strategies)"
_OVERVIEW = [
    # "What do the papers say / find / report about X?", "What does the literature say ..."
    rf"\bwhat (?:do|does|did) (?:the |these |those |recent |existing |our )?(?:[a-z-]+ )?{_WORKS}\b",
    rf"\b(?:what|which) (?:other )?{_WORKS}\b",  # "Which papers study X", "what studies exist ..."
    r"\bwhat (?:is|has been) (?:known|found|shown|done|the state of the art|the current state)\b",
    r"\bwhat do we know\b",
    r"\b(?:an |a short |a brief )?(?:overview|survey|review|summary|landscape) of\b",
    r"\bgive (?:me )?an? (?:overview|summary|survey)\b",
    rf"\bsummari[sz]e (?:the |recent |existing )?(?:{_WORKS}|work|findings|results)\b",
    # "papers on X", "research about X", "work on X": a body of work on a topic.
    rf"\b(?:{_WORKS}|work) "
    r"(?:on|about|into|regarding|addressing|studying|that (?:study|use|propose|address))\b",
    rf"\b(?:recent|latest|current|cutting[- ]edge|state[- ]of[- ]the[- ]art|key|main|major) "
    rf"(?:advances|advancements|developments|progress|work|{_WORKS}|{_APPROACHES}|findings|results)\b",
    # "Find / list / recommend / provide (me) some papers ..."
    r"\b(?:find|list|show|recommend|suggest|provide|give|point me to|search for|look for)\b"
    rf"[^.?!]*?\b{_WORKS}\b",
    rf"\b(?:are there|is there) (?:any )?(?:{_WORKS}|work)\b",
    rf"\b(?:what|which) (?:are|were) (?:the )?(?:main |different |existing |common |known |key |various )?"
    rf"{_APPROACHES}\b",
    rf"\b{_APPROACHES} (?:exist|have been proposed|are there|are used)\b",
    r"\bhow (?:has|have) [^?]* (?:evolved|progressed|developed|changed)\b",
]
_OVERVIEW_RE = re.compile("|".join(f"(?:{p})" for p in _OVERVIEW), re.IGNORECASE)

# A side of a comparison: a lazy phrase; the patterns name the words between the sides.
_SIDE = r"(?P<{name}>[^?:;]+?)"
_COMPARISON = [
    # "How do A and B differ?", "How does A differ from B?", "How is A different from B?"
    rf"\bhow (?:do|did|would) {_SIDE.format(name='a')} (?:and|&) {_SIDE.format(name='b')} "
    r"(?:differ|compare|contrast|relate)\b",
    rf"\bhow (?:does|do|did|is|are|was|were) {_SIDE.format(name='a')} (?:differ|different|distinct) "
    rf"(?:from|to|than) {_SIDE.format(name='b')}(?:[?:;.]|\s+(?:in|on|when)\b|$)",
    rf"\bhow (?:does|do|did) {_SIDE.format(name='a')} compare (?:to|with|against) {_SIDE.format(name='b')}"
    r"(?:[?:;.]|\s+(?:in|on|when)\b|$)",
    # "Compare A with B", "contrast A and B"
    rf"\b(?:compare|contrast) {_SIDE.format(name='a')} (?:with|to|and|against|versus|vs\.?) "
    rf"{_SIDE.format(name='b')}(?:[?:;.]|\s+(?:in|on)\s+(?:terms|what|how)\b|$)",
    # "the difference(s) between A and B", "what distinguishes A from B"
    rf"\b(?:differences?|distinction|contrast|similarities) between {_SIDE.format(name='a')} and "
    rf"{_SIDE.format(name='b')}(?:[?:;.]|$)",
    rf"\bwhat (?:distinguishes|separates|sets apart) {_SIDE.format(name='a')} from {_SIDE.format(name='b')}"
    r"(?:[?:;.]|$)",
    # "A vs B", "A versus B"
    rf"^(?:\s*(?:what about|tell me about|explain)\s+)?{_SIDE.format(name='a')}\s+(?:vs\.?|versus)\s+"
    rf"{_SIDE.format(name='b')}(?:[?:;.]|$)",
    # "Which is better, A or B?"
    rf"\bwhich (?:is|was|works|performs|one is) [a-z ]*?(?:better|worse|faster|slower|cheaper|more \w+|"
    rf"less \w+)[,:]? {_SIDE.format(name='a')} or {_SIDE.format(name='b')}(?:[?:;.]|$)",
]
_COMPARISON_RE = [re.compile(p, re.IGNORECASE) for p in _COMPARISON]
# Words that open a side but do not name it ("How does the paper's method ...": keep; "How do both ...").
_LEAD = re.compile(r"^(?:the two|both|they|these|those|them|it|each)\b", re.IGNORECASE)


def comparison_sides(question: str) -> tuple[str, str] | None:
    """Return the two things a comparison question compares, or None when it is not one."""
    text = " ".join(question.split())
    for pattern in _COMPARISON_RE:
        match = pattern.search(text)
        if match is None:
            continue
        a, b = (_clean(match.group(name)) for name in ("a", "b"))
        if a and b and a.lower() != b.lower() and not _LEAD.match(a) and not _LEAD.match(b):
            return a, b
    return None


def _clean(side: str) -> str:
    side = side.strip(" ,.'\"")
    return re.sub(r"^(?:between|of)\s+", "", side, flags=re.IGNORECASE)


# Words that frame an overview question rather than name its topic, as its leading words.
_FRAME = frozenset(
    """a about across all an and any are articles been can could did do does exist existing find found
    from give has have how i in is it known latest list literature looking me most of on or overview
    paper papers please propose proposed provide publications recent recommend regarding report research
    say says show some studies study studied suggest summarise summarize summary survey tell the
    there these to us use used using was we were what which who work works would you introduce
    introduced address addressed discuss key main""".split()  # noqa: SIM905
)
_TOKEN = re.compile(r"[\w'-]+|[^\w\s]")


def overview_topic(question: str) -> str:
    """Return an overview question without its framing words ("What do the papers say about X?" -> "X")."""
    words = _TOKEN.findall(question)
    start = 0
    while start < len(words) and (words[start].lower() in _FRAME or not words[start][0].isalnum()):
        start += 1
    topic = " ".join(words[start:]).rstrip(" ?.!")
    topic = re.sub(r"\s+([,;:])", r"\1", topic)
    return topic if len(topic) >= 3 else question


def question_kind(question: str) -> Kind:
    """Return `comparison` (two named sides), `overview` (a topic across papers) or `single`."""
    if comparison_sides(question) is not None:
        return COMPARISON
    if _OVERVIEW_RE.search(" ".join(question.split())):
        return OVERVIEW
    return SINGLE


def side_match(
    side: str, passages: Sequence[Passage], embed_model: TextEncoder, min_score: float
) -> int | None:
    """Return the index of the passage with the sentence closest to `side`, if it reaches `min_score`."""
    best = score_sentences(side, passages, embed_model).best()
    if not best:
        return None
    rank = max(best, key=lambda r: best[r])
    return rank if best[rank] >= min_score else None
