"""Cut a streamed reply into whole sentences, so each one can be checked before anyone sees it."""

from __future__ import annotations

from assistant.extractive import sentences


class SentenceStream:
    """Collects streamed text; hands out each sentence once the next one has begun, the last at the end."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, piece: str) -> list[str]:
        """Add `piece`; return the sentences it completed."""
        self._pending += piece
        parts = sentences(self._pending)
        if len(parts) < 2:
            return []
        # The last part may still grow ("... 1.5" -> "... 1.5x faster"): keep it back.
        self._pending = parts[-1]
        return parts[:-1]

    def close(self) -> list[str]:
        """Return what is left once the stream has ended."""
        rest, self._pending = sentences(self._pending), ""
        return rest
