"""Readers on the real samples and on broken input."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from assistant.errors import InputError, SourceError
from assistant.ingest import bundled_corpus
from assistant.sources import detect_format, read_papers
from tests.helpers.records import split


def test_seed_listing_fields() -> None:
    papers, bad = split(read_papers(bundled_corpus()))
    assert bad == []
    assert len(papers) == 10
    by_id = {p.arxiv_id: p for p in papers}
    alpaca = by_id["2305.14387"]
    assert alpaca.title is None
    assert alpaca.date == "2023-05-22"
    assert alpaca.comment is None
    assert alpaca.abstract.startswith("Large language models (LLMs) such as ChatGPT")
    assert alpaca.abstract.endswith("https://github.com/tatsu-lab/alpaca_farm.")
    assert by_id["2007.05105"].comment == "ICML 2020"
    assert by_id["1910.13101"].comment == "Accepted as spotlight presentation to NeurIPS 2019"
    checklist = by_id["2005.04118"]
    assert checklist.journal_ref == "Association for Computational Linguistics (ACL), 2020"
    assert checklist.comment is None
    assert checklist.date == "2020-05-08"


def test_bundled_corpus_is_the_users_seed(data_dir: Path) -> None:
    seed = data_dir.parent / "seed" / "000_718cd15f765c8ae3.txt"
    assert bundled_corpus().read_bytes() == seed.read_bytes()


def test_kaggle_head200_fields(data_dir: Path) -> None:
    papers, bad = split(read_papers(data_dir / "formats" / "kaggle-snapshot-head200.jsonl"))
    assert (len(papers), bad) == (200, [])
    first = papers[0]
    assert first.arxiv_id == "0704.0001"
    assert first.title == (
        "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    )
    assert first.authors[1:] == ("E. L. Berger", "P. M. Nadolsky", "C. -P. Yuan")
    assert first.categories == ("hep-ph",)
    assert first.date == "2007-04-02"
    assert first.journal_ref == "Phys.Rev.D76:013009,2007"
    assert first.doi == "10.1103/PhysRevD.76.013009"
    assert first.comment == "37 pages, 15 figures; published version"
    assert "\n" not in first.abstract and first.abstract.startswith("A fully differential")


def test_kaggle_gz_corpus_streams(data_dir: Path) -> None:
    head = list(itertools.islice(read_papers(data_dir / "arxiv-cs-75k.kaggle.jsonl.gz"), 500))
    papers, bad = split(head)
    assert len(papers) == 500 and bad == []
    assert papers[0].arxiv_id == "1812.06145"
    assert papers[0].date == "2025-10-13"
    assert "cs.CV" in papers[0].categories


def test_kaggle_bad_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    good = {"id": "2501.01234v2", "abstract": "  Real text\n here.", "title": "T", "categories": "cs.CL"}
    lines = [
        json.dumps(good),
        "{broken json",
        json.dumps({"id": "2501.00002", "abstract": "   "}),
        json.dumps(["not", "an", "object"]),
        "[" * 100_000,
        json.dumps({"abstract": "no id"}),
        "",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe bad bytes\n")
    papers, bad = split(read_papers(path))
    assert [p.arxiv_id for p in papers] == ["2501.01234"]
    assert papers[0].abstract == "Real text here."
    assert [b.line for b in bad] == [2, 3, 4, 5, 6, 8]
    assert "broken JSON" in bad[0].reason
    assert "no 'abstract'" in bad[1].reason
    assert "not UTF-8" in bad[5].reason
    assert str(bad[0]).startswith(f"{path}:2: ")


def test_seed_broken_blocks_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "seed.txt"
    path.write_text(
        "Good abstract text.\n\narXiv:2101.00001v3\nCreated: 2021-01-01\n\n"
        "arXiv:2101.00002\nCreated: 2021-01-02\n\n"
        "Another abstract.\n\narXiv:2101.00003\nCreated: 2021-13-45\n\n"
        "Last abstract.\n\nVenue 2021\n\narXiv:2101.00004 - J. Ref 1\nCreated: 2021-01-04\n\n"
        "Dangling text with no id.\n",
        encoding="utf-8",
    )
    papers, bad = split(read_papers(path))
    assert [p.arxiv_id for p in papers] == ["2101.00001", "2101.00004"]
    assert (papers[1].comment, papers[1].journal_ref) == ("Venue 2021", "J. Ref 1")
    assert [(b.line, b.reason.split()[0]) for b in bad] == [
        (6, "arXiv:2101.00002"),
        (11, "Created"),
        (21, "abstract"),
    ]


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    body = "".join(
        json.dumps({"id": f"2501.{i:05d}", "abstract": f"abstract {i} " * 50}) + "\n" for i in range(2000)
    )
    data = gzip.compress(body.encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    papers = []
    with pytest.raises(SourceError, match="gzip data breaks off"):
        for record in read_papers(path):
            papers.append(record)
    assert len(papers) > 100


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\x00\x01\x02binary", "binary"), (b"<feed/>", "XML")],
)
def test_unusable_files_raise_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        list(read_papers(path))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        list(read_papers(tmp_path / "nope.jsonl"))
    with pytest.raises(SourceError, match="is a folder"):
        list(read_papers(tmp_path))


def test_format_detected_from_content_not_name(tmp_path: Path) -> None:
    jsonl = tmp_path / "abstracts.txt"
    jsonl.write_text('{"id": "1", "abstract": "x"}\n')
    seed = tmp_path / "abstracts.jsonl.gz"
    seed.write_bytes(gzip.compress(bundled_corpus().read_bytes()))
    assert detect_format(jsonl) == "kaggle"
    assert detect_format(seed) == "seed"
    assert len(split(read_papers(seed))[0]) == 10


def test_unknown_format_name() -> None:
    with pytest.raises(InputError, match="unknown format"):
        read_papers(bundled_corpus(), "csv")
