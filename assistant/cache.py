"""The per-user cache folder, for files built once from installed packages (joined model, fast embedding)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return $XDG_CACHE_HOME/arxiv-assistant, or ~/.cache/arxiv-assistant."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "arxiv-assistant"
