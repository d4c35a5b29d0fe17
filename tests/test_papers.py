"""Stored papers read back whole, and `similar`: the nearest papers by a paper's own stored vectors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from assistant.config import Settings
from assistant.embeddings import MiniLMEmbedding
from assistant.errors import InputError
from assistant.ingest import Ingester, bundled_corpus
from assistant.ingest.chunking import Chunker
from assistant.pipeline import Assistant, open_store
from assistant.schema import Paper
from assistant.sources import read_papers
from assistant.store.papers import join_chunks
from tests.helpers.cli import cli
from tests.helpers.settings import make_settings

KAGGLE_HEAD = Path("formats") / "kaggle-snapshot-head200.jsonl"
STORED = 60  # real records ingested; the chunking test reads many more without embedding
TWIN = "2401.00042"  # a copy of 0704.0001 (title and abstract) under another id and category


def test_chunks_join_back_into_the_abstract(data_dir: Path) -> None:
    chunker = Chunker(Settings.load(env={}).chunking)
    files = [data_dir / KAGGLE_HEAD, data_dir / "arxiv-cs-75k.kaggle.jsonl.gz"]
    papers = [
        p for f in files for p in itertools.islice(read_papers(f, "kaggle"), 1500) if isinstance(p, Paper)
    ]
    split = 0
    for paper in papers:
        texts = [node.get_content() for node in chunker.nodes(paper)]
        split += len(texts) > 1
        assert join_chunks(texts) == paper.abstract, paper.arxiv_id
    assert split > 800, "most real abstracts are split into overlapping chunks"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, embed: MiniLMEmbedding, data_dir: Path) -> Path:
    """Real Kaggle records, the bundled abstracts, and a twin of 0704.0001 under another id."""
    folder = tmp_path_factory.mktemp("papers")
    head = (data_dir / KAGGLE_HEAD).read_text().splitlines()[:STORED]
    twin = json.loads(head[0]) | {"id": TWIN, "categories": "hep-ex"}
    (folder / "papers.jsonl").write_text("\n".join([*head, json.dumps(twin)]) + "\n")
    settings = make_settings(folder / "store")
    Ingester(open_store(settings, for_writing=True), embed, settings.chunking).ingest(
        [folder / "papers.jsonl", bundled_corpus()]
    )
    return folder / "store"


@pytest.fixture(scope="module")
def bot(store: Path, embed: MiniLMEmbedding) -> Assistant:
    return Assistant(make_settings(store), embed_model=embed)


def test_stored_record_equals_what_was_read(bot: Assistant, data_dir: Path) -> None:
    read = [p for p in itertools.islice(read_papers(data_dir / KAGGLE_HEAD, "kaggle"), STORED)]
    for paper in read:
        assert bot.paper(paper.arxiv_id) == paper  # type: ignore[union-attr]
    assert bot.paper("arXiv:0704.0001v3") == read[0], "ids are taken in any spelling"
    untitled = bot.paper("2305.14387")
    assert untitled.title is None and untitled.date == "2023-05-22" and untitled.abstract.startswith("Large")


def test_similar_uses_stored_vectors_and_leaves_the_paper_out(
    bot: Assistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_embedding(*_: object) -> None:
        raise AssertionError("similar() must not embed anything")

    monkeypatch.setattr(type(bot.embed_model), "embed", no_embedding)  # every embedding goes through it
    found = bot.similar("0704.0001", 4)
    assert [p.arxiv_id for p in found][0] == TWIN and found[0].score > 0.99
    assert "0704.0001" not in {p.arxiv_id for p in found} and len(found) == 4
    assert [p.score for p in found] == sorted((p.score for p in found), reverse=True)
    assert all(p.metadata.get("title") for p in found[1:])

    only_math = bot.similar("0704.0001", 3, filters={"categories": ["math.*"]})
    assert only_math and all(any(c.startswith("math.") for c in p.metadata["categories"]) for p in only_math)
    assert bot.similar("0704.0001", 3, filters={"since": "2030-01-01"}) == []
    assert [p.arxiv_id for p in bot.similar(TWIN, 1, filters={"author": "Nadolsky"})] == ["0704.0001"]


def test_bad_ids_are_one_clear_error_and_change_nothing(bot: Assistant) -> None:
    chunks = bot.store.count()
    for raw, says in (
        ("0704.00001x", "is not an arXiv id"),
        ("", "is not an arXiv id"),
        ("9999.99999", "arXiv:9999.99999 is not in the store"),
        ("hep-th/9901001", "arXiv:hep-th/9901001 is not in the store"),
    ):
        with pytest.raises(InputError, match=says):
            bot.similar(raw)
        with pytest.raises(InputError, match=says):
            bot.paper(raw)
    with pytest.raises(InputError, match="top_k -2 is not allowed: give a whole number from 1 to 100"):
        bot.similar("0704.0001", -2)
    assert bot.store.count() == chunks


def test_similar_command(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = cli(capsys, "similar", "0704.0001", "--top-k", "2", "--json", "--store", str(store))
    assert code == 0
    papers = json.loads(text)
    assert [p["arxiv_id"] for p in papers][0] == TWIN and len(papers) == 2
    assert set(papers[0]) == {"arxiv_id", "title", "authors", "date", "categories", "score", "text"}
    assert papers[1]["authors"] and papers[1]["date"].startswith("2007-")

    code, text, _ = cli(
        capsys, "similar", "0704.0001", "--top-k", "1", "--category", "hep-ex", "--store", str(store)
    )
    title = "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    assert code == 0 and text == f"   arXiv:{TWIN} (1.00) {title}  https://arxiv.org/abs/{TWIN}\n"
    code, text, err = cli(capsys, "similar", "0704.0001v", "--store", str(store))
    assert (
        code == 1
        and text == ""
        and err
        == (
            "assistant: error: '0704.0001v' is not an arXiv id; write it like 2005.04118, arXiv:2005.04118v2 "
            "or hep-th/9901001\n"
        )
    )
