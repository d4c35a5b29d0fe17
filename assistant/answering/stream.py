"""Cut a streamed reply into whole sentences, so each one can be checked before anyone sees it."""

from __future__ import annotations

import re

from assistant.retrieve.sentences import sentences

# Markers that open a piece belong to the sentence before it: "... SWA. [arXiv:ID] Next ..." splits
# after "SWA." (a capital-or-bracket follows), but the marker is that sentence's citation.
_LEADING_MARKERS = re.compile(r"^(?:\[[^\[\]]*\]\s*)+")


def answer_sentences(text: str) -> list[str]:
    """Split an answer into sentences, each keeping the citation markers written after its full stop."""
    out: list[str] = []
    for part in sentences(text):
        if out and part.startswith("["):
            markers = _LEADING_MARKERS.match(part)
            # An unfinished marker ("[arXiv:23") stays with the sentence before it until it is whole.
            cut = markers.end() if markers else len(part)
            out[-1] = f"{out[-1]} {part[:cut].strip()}"
            part = part[cut:].strip()
        if part:
            out.append(part)
    return out


class SentenceStream:
    """Collects streamed text; hands out each sentence once the next one has begun, the last at the end."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, piece: str) -> list[str]:
        """Add `piece`; return the sentences it completed."""
        self._pending += piece
        parts = answer_sentences(self._pending)
        if len(parts) < 2:
            return []
        # The last part may still grow ("... 1.5" -> "... 1.5x faster", "SWA." -> "SWA. [arXiv:ID]").
        self._pending = parts[-1]
        return parts[:-1]

    def close(self) -> list[str]:
        """Return what is left once the stream has ended."""
        rest, self._pending = answer_sentences(self._pending), ""
        return rest
