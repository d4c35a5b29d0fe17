"""arxiv-assistant: cited answers from arXiv abstracts."""

from assistant.config import Settings
from assistant.errors import AssistantError
from assistant.pipeline import Assistant, answer
from assistant.schema import Answer, Paper, Passage

__all__ = ["Answer", "Assistant", "AssistantError", "Paper", "Passage", "Settings", "answer"]
