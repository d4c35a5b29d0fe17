"""The exception family: every message says what went wrong and what to do."""


class AssistantError(Exception):
    """Base class for errors the CLI and UI show as one clean line."""


class ConfigError(AssistantError):
    """A setting, profile or flag is invalid."""


class InputError(AssistantError):
    """A question or argument the user gave cannot be used."""


class SourceError(AssistantError):
    """An input file cannot be read at all (bad records inside a file are reported, not raised)."""


class StoreError(AssistantError):
    """The Chroma store is missing, unreadable or inconsistent."""


class EmbeddingMismatchError(StoreError):
    """The store was built with another embedding model than the one configured."""


class LLMError(AssistantError):
    """A generative backend is misconfigured, missing or cannot be loaded."""


class FetchError(AssistantError):
    """A live fetch from arXiv cannot go on (network unreachable, server refusing, API error)."""


class EmbeddingError(AssistantError):
    """An embedding spec is invalid, its client is missing, or its server failed."""
