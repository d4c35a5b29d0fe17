"""bench/ingest_latency.py end to end on a small made-up store: its table, and the new papers found."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import child_env
from tests.helpers.records import papers_file
from tests.helpers.settings import ROOT

pytestmark = pytest.mark.slow
ROW = re.compile(r"^\| (idle|during the ingest) \| (\d+) \| (\d+) \|", re.MULTILINE)


def test_latency_under_ingest_prints_both_phases(tmp_path: Path) -> None:
    data = papers_file(tmp_path / "papers.jsonl", 160)
    bench = [sys.executable, str(ROOT / "bench" / "ingest_latency.py"), "--data", str(data)]
    flags = ["--papers", "120", "--add", "40", "--idle", "5", "--clients", "2", "--found", "5"]
    out = subprocess.run(
        [*bench, *flags, "--work", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = {phase: (int(answered), int(failed)) for phase, answered, failed in ROW.findall(out.stdout)}
    assert rows.keys() == {"idle", "during the ingest"}, out.stdout
    assert all(answered > 0 and failed == 0 for answered, failed in rows.values()), out.stdout
    assert "added 40, updated 0, unchanged 0, bad 0" in out.stdout
    assert "new papers found by their title afterwards (bm25, top 5): 5/5" in out.stdout
