"""Citations for reference managers: `assistant cite`, BibTeX/RIS/Markdown entries, answers' `references`."""

from __future__ import annotations

import json
from pathlib import Path

import bibtexparser
import pytest
import rispy
from bibtexparser.middlewares import SeparateCoAuthors

from assistant.bibliography import bibtex, markdown, plain, references, ris
from assistant.embeddings import MiniLMEmbedding
from assistant.ingest import Ingester, bundled_corpus
from assistant.pipeline import Assistant, open_store
from assistant.schema import Paper
from tests.helpers.cli import cli, run
from tests.helpers.records import CHECKLIST_AUTHORS, CHECKLIST_TITLE, checklist_record
from tests.helpers.settings import make_settings

# Real records: the first lines of the real Kaggle snapshot (LaTeX in names and titles, DOIs,
# journal references) read from ../shared/data by the fixture below.
HEAD = 40


@pytest.fixture(scope="module")
def titled_store(tmp_path_factory: pytest.TempPathFactory, embed: MiniLMEmbedding, data_dir: Path) -> Path:
    """A store from a Kaggle-format file with titles: CheckList and real snapshot records; and the sample."""
    folder = tmp_path_factory.mktemp("cite")
    kaggle = folder / "papers.jsonl"
    head = (data_dir / "formats" / "kaggle-snapshot-head200.jsonl").read_text().splitlines()[:HEAD]
    kaggle.write_text("\n".join([json.dumps(checklist_record()), *head]) + "\n")
    settings = make_settings(folder / "store")
    store = open_store(settings, for_writing=True)
    # The bundled listing has 2005.04118 too, untitled: the Kaggle record, read later, wins.
    report = Ingester(store, embed, settings.chunking).ingest([bundled_corpus(), kaggle])
    assert report.bad == 0 and report.duplicates == 1
    return folder / "store"


def parse(text: str) -> bibtexparser.Library:
    """Parse BibTeX the way a reference manager's importer would, authors split on `and`."""
    library = bibtexparser.parse_string(text, append_middleware=[SeparateCoAuthors()])
    assert not library.failed_blocks, [b.error for b in library.failed_blocks]
    return library


@pytest.mark.slow  # a real `assistant` process
def test_cite_bibtex_reads_back_with_title_authors_year(titled_store: Path) -> None:
    out = run("cite", "2005.04118", "--format", "bibtex", "--store", str(titled_store))
    assert out.returncode == 0, out.stderr
    (entry,) = parse(out.stdout).entries
    assert entry.entry_type == "misc" and entry.key == "ribeiro2020accuracybehavioraltesting"
    fields = {name: field.value for name, field in entry.fields_dict.items()}
    assert fields["title"] == CHECKLIST_TITLE
    assert fields["author"] == CHECKLIST_AUTHORS
    assert fields["year"] == "2020"
    assert fields["eprint"] == "2005.04118" and fields["archivePrefix"] == "arXiv"
    assert fields["primaryClass"] == "cs.CL"
    assert fields["note"] == "Association for Computational Linguistics (ACL), 2020"
    assert fields["url"] == "https://arxiv.org/abs/2005.04118"
    assert "doi" not in fields  # the record has none


def test_cite_formats_and_user_errors(titled_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ("--store", str(titled_store))
    code, text, _ = cli(
        capsys, "cite", "arXiv:2005.04118v2", "0704.0001", "2005.04118", "--format", "markdown", *store
    )
    assert code == 0
    lines = text.splitlines()
    assert len(lines) == 2, "one line per paper, the repeated id once"
    assert lines[0].startswith("- Marco Tulio Ribeiro, Tongshuang Wu, Carlos Guestrin, Sameer Singh (2020).")
    assert "*Beyond Accuracy: Behavioral Testing of NLP models with CheckList*" in lines[0]
    assert "[arXiv:0704.0001](https://arxiv.org/abs/0704.0001) \\[hep-ph\\]" in lines[1]
    assert "C. Balázs" in lines[1], "LaTeX accents become Unicode"

    records = rispy.loads(cli(capsys, "cite", "0704.0001", "--format", "ris", *store)[1])
    assert [r["title"] for r in records] == [
        "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    ]
    assert records[0]["doi"] == "10.1103/PhysRevD.76.013009" and records[0]["year"] == "2007"
    assert records[0]["type_of_reference"] == "UNPB" and records[0]["authors"][0] == "C. Balázs"

    for ids, says in (
        (["2005.04118", "9999.99999"], "arXiv:9999.99999 is not in the store"),
        (["2005.04118", "not-an-id"], "'not-an-id' is not an arXiv id"),
    ):
        code, text, err = cli(capsys, "cite", *ids, *store)
        assert code == 1 and text == "", "nothing is printed when one id is wrong"
        assert err.count("\n") == 1 and says in err and err.startswith("assistant: error: ")


def test_every_real_record_round_trips(titled_store: Path, embed: MiniLMEmbedding, data_dir: Path) -> None:
    bot = Assistant(make_settings(titled_store), embed_model=embed)
    lines = (data_dir / "formats" / "kaggle-snapshot-head200.jsonl").read_text().splitlines()[:HEAD]
    papers = [bot.paper(json.loads(line)["id"]) for line in lines]
    entries = parse(bibtex(papers)).entries
    assert [e.fields_dict["eprint"].value for e in entries] == [p.arxiv_id for p in papers]
    assert len({e.key for e in entries}) == len(papers), "keys are unique"
    for entry, paper in zip(entries, papers, strict=True):
        assert entry.fields_dict["title"].value == paper.title
        # A name with " and " in it (`Mishchenko 1 and 2`, affiliations) is braced whole.
        assert [a.removeprefix("{").removesuffix("}") for a in entry.fields_dict["author"].value] == list(
            paper.authors
        )
        assert entry.fields_dict["year"].value == paper.date[:4]  # type: ignore[index]
    assert any(p.doi for p in papers) and any(p.journal_ref for p in papers)
    for entry, paper in zip(entries, papers, strict=True):
        assert ("doi" in entry.fields_dict) == bool(paper.doi)
        assert ("note" in entry.fields_dict) == bool(paper.journal_ref)
    records = rispy.loads(ris(papers))
    assert [r["title"] for r in records] == [plain(p.title or "") for p in papers]
    assert [r["authors"] for r in records] == [[plain(a) for a in p.authors] for p in papers]
    assert markdown(papers).count("\n- ") == len(papers) - 1


def test_untitled_and_awkward_papers_still_give_valid_entries() -> None:
    untitled = Paper("2305.14387", "Abstract.", date="2023-05-22")
    broken = Paper("2401.00001", "x", title="An {unbalanced brace", authors=("A. {B",), categories=("cs.CL",))
    percent = Paper(
        "2401.00002", "x", title="Solving 50% of it: $O(n^2)$ and \\emph{more}", authors=("Ann Lee",)
    )
    entries = parse(bibtex([untitled, broken, percent])).entries
    assert [e.key for e in entries] == ["arXiv:2305.14387", "bunbalancedbrace", "leesolving50o"]
    assert set(entries[0].fields_dict) == {"year", "eprint", "archivePrefix", "url"}
    assert entries[1].fields_dict["title"].value == "An unbalanced brace"
    assert entries[1].fields_dict["author"].value == ["A. B"]
    assert entries[2].fields_dict["title"].value == "Solving 50\\% of it: $O(n^2)$ and \\emph{more}"
    assert plain(percent.title or "") == "Solving 50% of it: O(n^2) and more"
    (record,) = rispy.loads(ris([untitled]))
    assert "title" not in record and record["accession_number"] == "arXiv:2305.14387"
    assert markdown([untitled]) == "- (2023). [arXiv:2305.14387](https://arxiv.org/abs/2305.14387).\n"


def test_ask_json_gives_one_reference_per_citation(
    titled_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_LLM", "extractive")
    question = "How can NLP models be tested beyond held-out accuracy?"
    code, text, _ = cli(capsys, "ask", question, "--json", "--store", str(titled_store))
    assert code == 0
    data = json.loads(text)
    assert data["citations"] and len(data["references"]) == len(data["citations"])
    for cited, entry_text in zip(data["citations"], data["references"], strict=True):
        (entry,) = parse(entry_text).entries
        assert entry.fields_dict["eprint"].value == cited
    checklist = data["references"][data["citations"].index("2005.04118")]
    assert parse(checklist).entries[0].fields_dict["title"].value == CHECKLIST_TITLE


def test_references_follow_citation_order(titled_store: Path, embed: MiniLMEmbedding) -> None:
    bot = Assistant(make_settings(titled_store), embed_model=embed)
    result = bot.ask("What is AdaScale SGD?")
    refusal = bot.ask("What is the boiling point of zebra milk on Mars?")
    assert refusal.citations == [] and references(refusal) == []
    keys = [parse(r).entries[0].fields_dict["eprint"].value for r in references(result)]
    assert keys == result.citations and keys[0] == "2007.05105"
    assert references(result)[0].startswith("@misc{arXiv:2007.05105,\n"), "the bundled sample has no title"
