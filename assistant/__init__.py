"""arxiv-assistant: cited answers from arXiv abstracts.

The front door: `answer`, `Assistant`, `Answer`, `Settings`, `AssistantError` (and `Paper`,
`Passage`). The packages follow the data, and a module imports only its own stage and earlier ones
(tests/test_layout.py): values (`schema`, `errors`, `config`, `config_sources`, `keys`, `cache`,
`inert`) -> `sources/` -> `embeddings/` -> `store/` -> `ingest/` -> `llms/` -> `retrieve/` ->
`answering/` -> `pipeline` -> the front ends (`bibliography`, `mcp/`, `web/`, `evaluate/`,
`doctor`, `cli/`). This module loads `pipeline` on first use, so `import assistant` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.schema import Answer, Paper, Passage

if TYPE_CHECKING:
    from assistant.pipeline import Assistant, answer

__all__ = ["Answer", "Assistant", "AssistantError", "Paper", "Passage", "Settings", "answer"]


def __getattr__(name: str) -> Any:
    # `import assistant` stays light: llama-index (seconds to import) loads on first use only.
    if name in ("Assistant", "answer"):
        from assistant import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
