"""Untrusted text made inert for a terminal or a log: the control characters they would act on, removed."""

from __future__ import annotations

import re

# C0 controls, DEL and C1 (U+009B is a one-character CSI on many terminals).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(text: str, *, one_line: bool = False) -> str:
    """Remove control characters; keep tabs and newlines unless `one_line`."""
    if one_line:
        return _CONTROL.sub("", text)
    return _CONTROL.sub(lambda m: m.group() if m.group() in "\t\n" else "", text)
