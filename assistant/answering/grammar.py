"""GBNF grammars that hold a local model's reply to the answer's shape: cited sentences or the refusal."""

from __future__ import annotations

import json
from collections.abc import Sequence

from assistant.llms.prompts import NOT_FOUND

# A sentence's body: no line breaks, brackets only as markers (a paper may be named mid-sentence: "Set
# Distribution Networks [arXiv:ID] learn ..."), and a full stop only inside a token ("1.5x", "e.g"). The
# sentence ends at its markers, its full stop before or after them: "... SWA. [arXiv:ID]" is how the model
# likes to write it, and forbidding that made it write "._more text" instead.
_BODY = r'body ::= ( [^.?!\[\]\n] | "." [^ \n\[\]] | cite " " )*'
_START = r"""start ::= [A-Z0-9"'(]"""
# At most three markers: a model allowed to repeat its marker without end did (30 times, seen).
_CITES = "cites ::= cite (cite cite?)?"


def answer_grammar(ids: Sequence[str], *, refusal: bool, max_sentences: int = 3) -> str:
    """Return a GBNF grammar for 1..`max_sentences` sentences each ending in `[arXiv:ID]` markers of `ids`.

    With `refusal`, the reply may instead be exactly the refusal text.
    """
    if not ids:
        raise ValueError("a grammar needs at least one id to cite")
    alternatives = " | ".join(json.dumps(i) for i in dict.fromkeys(ids))
    more = ' (" " sentence)?' * (max_sentences - 1)
    rules = [
        f"root ::= {'refusal | ' if refusal else ''}answer",
        f"refusal ::= {json.dumps(NOT_FOUND)}",
        f"answer ::= sentence{more}",
        'sentence ::= start body ("." cites | cites ".")',
        _CITES,
        'cite ::= " [arXiv:" id "]"',
        f"id ::= {alternatives}",
        _START,
        _BODY,
    ]
    return "\n".join(rules) + "\n"


def papers_grammar(ids: Sequence[str], *, related: bool = False) -> str:
    """Return a GBNF grammar for one sentence per paper of `ids`, in order, the i-th ending with its marker.

    With `related`, instead exactly one sentence that ends citing every one of `ids`, in order (how they
    relate: a small model left free cited one paper twice).
    """
    if not ids:
        raise ValueError("a grammar needs at least one id to cite")
    ids = list(dict.fromkeys(ids))
    rules = [
        'cite ::= " [arXiv:" id "]"',
        f"id ::= {' | '.join(json.dumps(i) for i in ids)}",
        _START,
        _BODY,
    ]
    if related:
        every = " ".join(f'" [arXiv:" {json.dumps(i)} "]"' for i in ids)
        rules[:0] = ['root ::= start body ("." all | all ".")', f"all ::= {every}"]
    else:
        rules[:0] = [
            "root ::= " + ' " " '.join(f"s{n}" for n in range(len(ids))),
            *(
                f's{n} ::= start body ("." c{n} | c{n} ".")\nc{n} ::= " [arXiv:" {json.dumps(i)} "]"'
                for n, i in enumerate(ids)
            ),
        ]
    return "\n".join(rules) + "\n"
