"""Hosted API keys: where they are read from, and keeping them out of every message.

Both the answerers (`llms/`) and the served embeddings (`embeddings/`) read keys the same way: an
environment variable, else the file `answer.api_key_file` names.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

from assistant.config import AnswerSettings
from assistant.errors import LLMError

OPENAI_KEY_ENV = "OPENAI_API_KEY"
# Read only by `openai-compatible:`: the user's OpenAI key must never reach a third-party server.
COMPATIBLE_KEY_ENV = "OPENAI_COMPATIBLE_API_KEY"
KEY_FILE_SETTING = "answer.api_key_file ($ASSISTANT_API_KEY_FILE)"
_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{3})[A-Za-z0-9_\-*]+")
# Key files already warned about in this process: like ssh, say it once, not per question.
_WARNED: set[Path] = set()


def describe_failure(exc: BaseException, secret: str | None = None) -> str:
    """Say in one line, with neither `secret` nor anything that looks like a key in it, why a call failed."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    reason = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    if secret:
        reason = reason.replace(secret, "***")
    return _KEY_LIKE.sub(r"\1***", reason)[:200]


def hosted_key(settings: AnswerSettings, env: Mapping[str, str], var: str) -> str:
    """Return a hosted backend's API key: `$var` when set, else answer.api_key_file's content, else ""."""
    key = env.get(var, "").strip()
    if key or not settings.api_key_file.strip():
        return key
    return _read_key_file(settings.api_key_file)


def _read_key_file(value: str) -> str:
    """Return the API key held by the file `value` names; never put the key in a message."""
    path = Path(value.strip()).expanduser()
    # Masked in case the key itself was given as the path.
    shown = _KEY_LIKE.sub(r"\1***", repr(str(path)))
    fix = f"put only the key in it (and chmod 600 it), or unset {KEY_FILE_SETTING}"
    try:
        mode = path.stat().st_mode
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise LLMError(
            f"{KEY_FILE_SETTING}: cannot read the API key file {shown} ({reason}); {fix}"
        ) from None
    except UnicodeDecodeError:  # its message would quote a byte of the key
        raise LLMError(f"{KEY_FILE_SETTING}: the API key file {shown} is not UTF-8 text; {fix}") from None
    if not key:
        raise LLMError(f"{KEY_FILE_SETTING}: the API key file {shown} is empty; {fix}")
    if any(c.isspace() or not c.isprintable() for c in key):
        # A header with a newline fails in the HTTP client with an error that quotes the header.
        raise LLMError(
            f"{KEY_FILE_SETTING}: the API key file {shown} holds more than the key "
            f"(spaces, lines or control characters); {fix}"
        )
    if mode & 0o077 and path not in _WARNED:
        _WARNED.add(path)
        print(
            f"assistant: warning: permissions {mode & 0o777:04o} for the API key file {repr(str(path))} "
            f"are too open (group or others have access); run chmod 600 {repr(str(path))}",
            file=sys.stderr,
        )
    return key
