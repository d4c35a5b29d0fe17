"""Where the checkout and the real data are, and settings for a store in a tmp dir."""

from __future__ import annotations

import os
from pathlib import Path

from assistant.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ARXIV_DATA", ROOT.parent / "shared" / "data"))


def make_settings(store: Path, **overrides: object) -> Settings:
    """Settings for a store in a tmp dir, with dotted overrides; extractive unless a test picks a model."""
    return Settings.load(overrides={"store.path": store, "answer.llm": "extractive", **overrides}, env={})
