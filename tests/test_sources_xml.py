"""The arXiv API (Atom) and OAI-PMH readers on the real recorded responses, and on broken or hostile XML."""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from assistant.embeddings import MiniLMEmbedding
from assistant.errors import SourceError
from assistant.ingest import Ingester
from assistant.pipeline import open_store
from assistant.schema import BadRecord, Paper
from assistant.sources import detect_format, read_papers
from assistant.sources.oai import parse_oai
from assistant.sources.xmlstream import PageInfo, file_text
from tests.helpers.formats import OAI_FILE, error_feed
from tests.helpers.records import split
from tests.helpers.settings import make_settings


def test_atom_query_fields(data_dir: Path) -> None:
    papers, bad = split(read_papers(data_dir / "formats" / "rsxiv_query.xml"))
    assert (len(papers), bad) == (10, [])
    first = papers[0]
    assert first.arxiv_id == "nucl-ex/0408020"  # old-style id, version stripped
    assert first.title == (
        "Two-photon exchange and elastic scattering of electrons/positrons on the proton. "
        "(Proposal for an experiment at VEPP-3)"
    )
    assert first.abstract.startswith("It has been suggested that two-photon exchange corrections")
    assert (
        len(first.authors) == 9 and first.authors[0] == "J. Arrington" and first.authors[-1] == "H. de Vries"
    )
    assert first.categories == ("nucl-ex", "hep-ph")  # primary first, though it has no scheme
    assert first.date == "2004-08-18"  # <published>, the first version
    assert first.comment is not None and first.comment.startswith("13 pages, 10 figures.")
    assert (first.journal_ref, first.doi) == (None, None)
    second = papers[1]
    assert second.arxiv_id == "1309.4668"
    assert second.authors == ("A. Pertica", "S. J. Payne")  # affiliations are not names
    assert second.categories == ("physics.acc-ph",)
    assert second.journal_ref == "CERN Yellow Report CERN-2013-002, pp.237-240"
    assert second.doi == "10.5170/CERN-2013-002.237"
    assert [p.arxiv_id for p in papers][-3:] == ["nucl-th/9910021", "1602.03411", "1401.3666"]


def test_atom_answer_lacking_asked_ids_reports_them(data_dir: Path) -> None:
    source = data_dir / "formats" / "rsxiv_query_missing_id.xml"
    papers, bad = split(read_papers(source))
    assert [p.arxiv_id for p in papers] == ["2201.13452"]
    assert papers[0].authors == ("Hong-Ming Yin", "Jun Zou")
    assert (papers[0].categories, papers[0].date, papers[0].comment) == (
        ("math.AP",),
        "2022-01-31",
        "34 pages",
    )
    assert [str(b) for b in bad] == [
        f"{source}:6: arXiv:{i} was asked for but the API returned no entry for it; check the id"
        for i in ("2201.13455", "2201.13453", "2201.13454")
    ]
    papers, bad = split(read_papers(data_dir / "formats" / "rsxiv_query_empty.xml"))
    assert papers == [] and [b.reason.split()[0] for b in bad] == ["arXiv:1201.56789"]


def test_atom_error_feed_is_an_error_not_a_paper(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "error.xml"
    path.write_text(error_feed(data_dir), encoding="utf-8")
    papers, bad = split(read_papers(path))
    assert papers == []
    assert [str(b) for b in bad] == [
        f"{path}:11: the arXiv API answered with an error: incorrect id format for 1234.12345"
    ]


def test_atom_broken_entries_are_reported_with_their_line(data_dir: Path, tmp_path: Path) -> None:
    feed = (data_dir / "formats" / "rsxiv_query.xml").read_text(encoding="utf-8")
    feed = re.sub(r"<summary>.*?</summary>", "<summary>  </summary>", feed, count=1, flags=re.DOTALL)
    feed = feed.replace("<id>http://arxiv.org/abs/1309.4668v1</id>", "", 1)
    path = tmp_path / "feed.xml"
    path.write_text(feed, encoding="utf-8")
    papers, bad = split(read_papers(path))
    assert len(papers) == 8
    assert [(b.line, b.reason) for b in bad] == [
        (10, "nucl-ex/0408020: no <summary> text"),
        (50, "an <entry> with no <id>"),
    ]


def test_oai_arxiv_raw_fields(data_dir: Path) -> None:
    papers, bad = split(read_papers(data_dir / "formats" / OAI_FILE))
    assert (len(papers), bad) == (1000, [])
    assert len({p.arxiv_id for p in papers}) == 1000
    first = papers[0]
    assert (first.arxiv_id, first.title) == ("0801.3673", "Variational Functionals for Excited States")
    assert first.authors == ("Naoum C. Bacalis",)
    assert (first.categories, first.date, first.comment, first.doi) == (
        ("quant-ph",),
        "2008-01-23",
        "4 pages",
        None,
    )
    assert first.abstract.startswith("Functionals that have local minima") and "\n" not in first.abstract
    brane = papers[1]
    assert brane.arxiv_id == "0801.3674"
    assert brane.title == "A Study of Structure Formation and Reheating in the D3/D7 Brane Inflation Model"
    assert brane.authors == ("Robert H. Brandenberger", "Keshav Dasgupta", "Anne-Christine Davis")
    assert brane.categories == ("hep-th", "astro-ph", "gr-qc", "hep-ph")
    assert brane.date == "2008-01-23"  # v1 of four versions
    assert brane.comment == (
        "Some sections expanded, typos corrected and references added. "
        "Final version to appear in Phys. Rev. D"
    )
    assert (brane.journal_ref, brane.doi) == ("Phys.Rev.D78:083502,2008", "10.1103/PhysRevD.78.083502")
    assert papers[-1].arxiv_id == "0801.4672"
    assert papers[-1].authors == ("Chiara Menotti", "Nandini Trivedi")
    by_id = {p.arxiv_id: p for p in papers}
    assert by_id["0801.4375"].authors == ("CDF Collaboration: T. Aaltonen",)  # "et al" dropped
    assert sum(p.doi is not None for p in papers) == 573
    assert sum(p.journal_ref is not None for p in papers) == 478


def test_oai_page_info_has_the_resumption_token(data_dir: Path) -> None:
    path = data_dir / "formats" / OAI_FILE
    info = PageInfo()
    assert sum(1 for _ in parse_oai(file_text(path), str(path), info)) == 1000
    assert (info.token, info.total, info.error) == ("496549|47001", 907096, None)


def _records(data_dir: Path, count: int) -> list[str]:
    raw = (data_dir / "formats" / OAI_FILE).read_text(encoding="utf-8")
    return re.findall(r"<record>.*?</record>", raw, re.DOTALL)[:count]


def _as_arxiv(paper: Paper) -> str:
    """Render a paper as arXiv's OAI-PMH `arXiv` metadata format serves it (authors split into parts)."""
    authors = "".join(
        f"<author><keyname>{escape(name.rsplit(' ', 1)[-1])}</keyname>"
        f"<forenames>{escape(name.rsplit(' ', 1)[0])}</forenames></author>"
        for name in paper.authors
    )
    optional = "".join(
        f"<{tag}>{escape(value)}</{tag}>"
        for tag, value in (
            ("comments", paper.comment),
            ("journal-ref", paper.journal_ref),
            ("doi", paper.doi),
        )
        if value
    )
    return (
        '<arXiv xmlns="http://arxiv.org/OAI/arXiv/"><id>' + paper.arxiv_id + "</id>"
        f"<created>{paper.date}</created><authors>{authors}</authors>"
        f"<title>{escape(paper.title or '')}</title>"
        f"<categories>{' '.join(paper.categories)}</categories>{optional}"
        f"<abstract>  {escape(paper.abstract)}\n</abstract></arXiv>"
    )


def _as_dublin_core(paper: Paper) -> str:
    """Render a paper as arXiv's `oai_dc` format serves it ("Last, First" creators, typed identifiers)."""
    dc = "".join(
        f"<dc:{tag}>{escape(value)}</dc:{tag}>"
        for tag, value in [
            ("title", paper.title),
            *(("creator", ", ".join(reversed(n.rsplit(" ", 1)))) for n in paper.authors),
            ("subject", "Physics"),
            ("description", f"  {paper.abstract}\n"),
            ("description", f"Comment: {paper.comment}" if paper.comment else None),
            ("date", paper.date),
            ("date", "2009-11-13"),
            ("type", "text"),
            ("identifier", f"http://arxiv.org/abs/{paper.arxiv_id}"),
            ("identifier", paper.journal_ref),
            ("identifier", f"doi:{paper.doi}" if paper.doi else None),
        ]
        if value
    )
    return (
        '<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/">{dc}</oai_dc:dc>'
    )


def _oai_response(records: list[str], extra: str = "") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">\n'
        f"<responseDate>2025-01-02T00:00:00Z</responseDate>{extra}\n<ListRecords>\n"
        + "\n".join(records)
        + "\n</ListRecords>\n</OAI-PMH>\n"
    )


def test_oai_arxiv_and_dublin_core_formats_match_arxiv_raw(data_dir: Path, tmp_path: Path) -> None:
    raw = _records(data_dir, 5)
    path = tmp_path / "raw.xml"
    path.write_text(_oai_response(raw), encoding="utf-8")
    originals, _ = split(read_papers(path))
    for render, keeps_categories in ((_as_arxiv, True), (_as_dublin_core, False)):
        records = [
            f"<record><header><identifier>oai:arXiv.org:{p.arxiv_id}</identifier></header>"
            f"<metadata>{render(p)}</metadata></record>"
            for p in originals
        ]
        path.write_text(_oai_response(records), encoding="utf-8")
        papers, bad = split(read_papers(path))
        assert bad == []
        for paper, original in zip(papers, originals, strict=True):
            expected = original if keeps_categories else Paper(**{**original.__dict__, "categories": ()})
            assert paper == expected, render.__name__


def test_oai_deleted_unknown_and_error_records(data_dir: Path, tmp_path: Path) -> None:
    deleted = (
        '<record><header status="deleted"><identifier>oai:arXiv.org:0801.0001</identifier>'
        "<datestamp>2009-01-01</datestamp></header></record>"
    )
    unknown = (
        "<record><header><identifier>oai:arXiv.org:0801.0002</identifier></header>"
        '<metadata><mods xmlns="http://www.loc.gov/mods/v3"/></metadata></record>'
    )
    no_abstract = re.sub(r"<abstract>.*?</abstract>", "", _records(data_dir, 1)[0], flags=re.DOTALL)
    path = tmp_path / "mixed.xml"
    path.write_text(_oai_response([deleted, unknown, no_abstract, *_records(data_dir, 2)]), encoding="utf-8")
    papers, bad = split(read_papers(path))
    assert [p.arxiv_id for p in papers] == ["0801.3673", "0801.3674"]
    assert [(b.line, b.reason) for b in bad] == [
        (6, "metadata format <mods> is not supported; harvest arXivRaw, arXiv or oai_dc"),
        (7, "0801.3673: no abstract"),
    ]
    refusal = '<error code="badArgument">Illegal set value</error>'
    path.write_text(_oai_response([], refusal).replace("<ListRecords>\n\n</ListRecords>\n", ""))
    info = PageInfo()
    assert [str(b) for b in parse_oai(file_text(path), str(path), info)] == [
        f"{path}:3: the OAI-PMH service answered badArgument: Illegal set value"
    ]
    assert (info.error_code, info.token) == ("badArgument", None)
    path.write_text(_oai_response([], '<error code="noRecordsMatch">nothing</error>'))
    assert list(read_papers(path)) == []  # an empty selection, not a failure


def test_all_four_formats_detected_from_content_also_gzipped(data_dir: Path, tmp_path: Path) -> None:
    from assistant.ingest import bundled_corpus

    samples = {
        "seed": (bundled_corpus(), 10),
        "kaggle": (data_dir / "formats" / "kaggle-snapshot-head200.jsonl", 200),
        "atom": (data_dir / "formats" / "rsxiv_query.xml", 10),
        "oai": (data_dir / "formats" / OAI_FILE, 1000),
    }
    for fmt, (source, count) in samples.items():
        plain, packed = tmp_path / f"{fmt}.txt", tmp_path / f"{fmt}.json.gz"  # names that mislead
        plain.write_bytes(source.read_bytes())
        packed.write_bytes(gzip.compress(source.read_bytes()))
        for path in (plain, packed):
            assert detect_format(path) == fmt
            assert len(split(read_papers(path))[0]) == count, path


@pytest.mark.parametrize(
    "content",
    [
        b"<feed/>",  # an Atom-looking root without the Atom namespace
        b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>',
        b"<!-- a comment --><html><body>503 Service Unavailable</body></html>",
    ],
)
def test_other_xml_is_refused_by_detection(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "other.xml"
    path.write_bytes(content)
    with pytest.raises(SourceError, match="XML, but neither an arXiv API"):
        list(read_papers(path))


def test_explicit_format_on_the_wrong_xml(data_dir: Path) -> None:
    with pytest.raises(SourceError, match=r":2: <feed> is not an OAI-PMH response"):
        list(read_papers(data_dir / "formats" / "rsxiv_query.xml", "oai"))


@pytest.mark.parametrize(
    "doctype",
    [
        # "Billion laughs": a few lines that expand to gigabytes.
        '<!DOCTYPE feed [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
        + "]>",
        # External entity: would read a local file into the abstract.
        '<!DOCTYPE feed [<!ENTITY secret SYSTEM "file:///etc/passwd">]>',
    ],
)
def test_doctype_and_entities_are_refused(tmp_path: Path, doctype: str) -> None:
    path = tmp_path / "hostile.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n{doctype}\n<feed xmlns="http://www.w3.org/2005/Atom">'
        "<entry><id>http://arxiv.org/abs/2501.00001</id><summary>&j;&secret;</summary></entry></feed>\n"
    )
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"hostile.xml:2: has a DOCTYPE declaration"):
        list(read_papers(path, "atom"))
    assert time.monotonic() - started < 1


def test_cut_off_xml_keeps_the_records_before_the_cut(data_dir: Path, tmp_path: Path) -> None:
    raw = (data_dir / "formats" / OAI_FILE).read_bytes()
    path = tmp_path / "cut.xml"
    path.write_bytes(raw[: len(raw) // 2])
    records: list[Paper | BadRecord] = []
    with pytest.raises(SourceError, match=r"cut.xml:\d+: broken XML \(.*\); the records before it were read"):
        records.extend(read_papers(path))
    assert 400 < len(records) < 600 and all(isinstance(r, Paper) for r in records)
    packed = tmp_path / "cut.xml.gz"
    packed.write_bytes(gzip.compress(raw)[:200_000])
    with pytest.raises(SourceError, match="gzip data breaks off"):
        list(read_papers(packed))


def test_non_utf8_line_names_the_line(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "latin1.xml"
    text = (data_dir / "formats" / "rsxiv_query.xml").read_text(encoding="utf-8")
    path.write_bytes(text.replace("Rosenbluth", "Rosenbl\xfcth").encode("latin-1", errors="replace"))
    with pytest.raises(SourceError, match=r"latin1.xml:16: not UTF-8 text"):
        list(read_papers(path))


def test_atom_file_ingests_into_a_store(data_dir: Path, tmp_path: Path, embed: MiniLMEmbedding) -> None:
    settings = make_settings(tmp_path / "store")
    store = open_store(settings, for_writing=True)
    path = tmp_path / "query.atom.gz"
    path.write_bytes(gzip.compress((data_dir / "formats" / "rsxiv_query_missing_id.xml").read_bytes()))
    warnings: list[str] = []
    report = Ingester(store, embed, settings.chunking).ingest([path], warn=warnings.append)
    assert (report.added, report.bad, store.paper_count()) == (1, 3, 1)
    assert all("was asked for" in w for w in warnings)
