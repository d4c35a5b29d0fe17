"""The real recorded arXiv responses in the shared data's `formats/` and `spec/` folders."""

from __future__ import annotations

import textwrap
from pathlib import Path

OAI_FILE = "arxivsync_ListRecords_arXivRaw_1000.xml"


def error_feed(data_dir: Path) -> str:
    """The API's error response for a malformed id, exactly as the arXiv API user manual shows it."""
    manual = (data_dir / "spec" / "arxiv-docs__source_help_api_user-manual.md").read_text(encoding="utf-8")
    start = manual.index("    <?xml", manual.index("### 3.4. Errors"))
    return textwrap.dedent(manual[start : manual.index("</feed>", start) + len("</feed>")]) + "\n"
