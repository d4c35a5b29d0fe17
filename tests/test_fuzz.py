"""Property-based fuzzing (issue #9): the readers, the id normaliser and the citation parser.

Whatever they are fed (arbitrary bytes, cut-off or mutated records, huge fields, odd Unicode,
deeply nested JSON or XML), the readers yield `Paper`s and one-line `BadRecord`s or raise an
`AssistantError` with a one-line message: no other exception, no hang. `make test` runs a small
derandomised profile; `make fuzz` runs ASSISTANT_FUZZ_EXAMPLES=10000 examples per property.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import json
import os
import re
import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from llama_index.core.schema import TextNode

from assistant.config import ChunkingSettings
from assistant.embeddings import load_tokenizer
from assistant.errors import AssistantError
from assistant.ingest import bundled_corpus
from assistant.ingest.chunking import Chunker, embed_text
from assistant.schema import BadRecord, Paper
from assistant.sources import FORMATS, read_papers
from assistant.sources.atom import parse_atom, read_atom
from assistant.sources.citations import parse_citations, verify
from assistant.sources.ids import normalize_id
from assistant.sources.kaggle import read_kaggle
from assistant.sources.oai import parse_oai, read_oai
from assistant.sources.seed import read_seed
from assistant.sources.textio import GZIP_MAGIC, head, lines
from assistant.sources.xmlstream import elements

pytestmark = pytest.mark.slow

# Read at import: the autouse fixture in conftest.py clears ASSISTANT_* before each test runs.
EXAMPLES = int(os.environ.get("ASSISTANT_FUZZ_EXAMPLES") or 200)
settings.register_profile(
    "fuzz-ci",
    max_examples=EXAMPLES,
    deadline=None,  # the time limit below catches hangs; per-example timing on a shared CI box is noise
    derandomize=True,
    database=None,  # no .hypothesis/ folder in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("fuzz", settings.get_profile("fuzz-ci"), derandomize=False)
FUZZ = settings.get_profile("fuzz" if "ASSISTANT_FUZZ_EXAMPLES" in os.environ else "fuzz-ci")
# Huge inputs cost ~10-100 ms each: fewer of them.
HUGE = settings(FUZZ, max_examples=max(10, EXAMPLES // 50))
HUGE_CHARS = 1 << 18  # quadratic work on this many characters takes minutes; linear work, milliseconds
LIMIT_S = 20.0  # per example; generous for a loaded 2-core machine

Record = Paper | BadRecord


class Hang(Exception):
    """A reader ran past the time limit: a hang or a quadratic blow-up."""


@contextmanager
def time_limit(seconds: float = LIMIT_S) -> Iterator[None]:
    def alarm(*_: object) -> None:
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def one_line(text: str) -> bool:
    return len(text.splitlines()) == 1


def check_paper(paper: Paper) -> None:
    assert paper.arxiv_id and one_line(paper.arxiv_id), paper
    assert normalize_id(paper.arxiv_id) == paper.arxiv_id, paper
    assert paper.abstract.strip(), paper
    texts = [paper.arxiv_id, paper.abstract, paper.title, paper.comment, paper.journal_ref, paper.doi]
    for value in [*texts, paper.date, *paper.authors, *paper.categories]:
        if value is not None:
            value.encode("utf-8")  # a lone surrogate would crash the tokenizer and Chroma later
    assert all(paper.authors) and all(paper.categories), paper
    if paper.date is not None:
        assert dt.date.fromisoformat(paper.date).isoformat() == paper.date, paper


def drain(read: Callable[[], Iterable[Record]], limit: float = LIMIT_S) -> list[Record]:
    """Read to the end: records, or a clean one-line `AssistantError`; anything else fails the test."""
    items: list[Record] = []
    with time_limit(limit):
        try:
            items.extend(read())
        except AssistantError as exc:
            assert one_line(str(exc)), repr(str(exc))
    for item in items:
        if isinstance(item, Paper):
            check_paper(item)
        else:
            assert isinstance(item, BadRecord), item
            assert item.line >= 1 and item.reason and one_line(str(item)), item
            str(item).encode("utf-8")
    return items


# --- inputs ---------------------------------------------------------------------------------

ODD = [
    *"\x00\t\r\x0b\x1f\x7f\x85\xa0\u0301\u200b\u200f\u202e\u2028\u2029\ufeff\ufffd\U0001f600\U0010ffff",
    "e\u0301", "\r\n", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u0130\u00df\ufb03",
    "\uff12\uff10\uff12\uff15", "\u0662\u0660\u0662\u0665",  # fullwidth, Arabic-Indic: int() takes them
    " and ", ", ", "(", ")", "[", "]", "arXiv:", "v2", ".pdf", "/", " - ", "et al", "Comment: ", "doi:",
]  # fmt: skip
XML_ODD = [
    "&#10;", "&#13;", "&#0;", "&#xD800;", "&#x10FFFF;", "&amp;", "&lt;", "&nope;", "<![CDATA[a<b]]>",
    "]]>", "<!-- c -->", "<?pi x?>", "<!DOCTYPE x>", "<x/>", "</x>", "<", "&", "'", '"',
    "<?xml version='1.0' encoding='latin-1'?>", '<a xmlns="urn:x">', "<p:q/>",
]  # fmt: skip
IDS = [
    "2501.01234", "2501.01234v2", "arXiv:0704.0001", "math/0601001v3", "hep-th/9901001", "math.AG/0601001",
    "http://arxiv.org/abs/2305.14387v1", "https://arxiv.org/pdf/2305.14387.pdf", "arXiv:", " ",
    "http://arxiv.org/api/errors#incorrect_id_format", "oai:arXiv.org:0801.3673", "oai:arXiv.org:",
]  # fmt: skip
DATES = [
    "2020-07-09", "2004-08-18T23:13:32Z", "Wed, 23 Jan 2008 21:06:41 GMT", "Mon, 2 Apr 2007 19:18:42 GMT",
    "Mon, 1 Jan 99999999999999999999 00:00:00 GMT", "Mon, 99 Foo 2007 99:99:99 +9999", "2020-02-30",
    "99999-01-01", "\u0662\u0660\u0662\u0665-01-01", "20200709", "Mon, 1 Jan 2007 00:00:00 -99999999999",
]  # fmt: skip
VALUES = (
    IDS + DATES + ["hep-ph math.AG", "A. B (Inst), C and D (X (Y))", "A. Adare, et al", "Comment: 4 pages"]
)

# Text: odd pieces, plausible field values and anything else Hypothesis likes (no surrogates:
# files hold UTF-8, which cannot encode them; the JSON escapes below can).
odd_text = st.lists(st.sampled_from(ODD) | st.sampled_from(VALUES) | st.text(max_size=12), max_size=6).map(
    "".join
)
any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # includes lone surrogates
xml_text = st.lists(
    odd_text.map(escape) | st.sampled_from(XML_ODD) | st.sampled_from(VALUES).map(escape), max_size=5
).map("".join)
xml_attr = xml_text.map(lambda s: s.replace('"', "&quot;"))


def _mutation(pieces: list[str]) -> st.SearchStrategy[bytes]:
    return (
        st.sampled_from(pieces).map(str.encode) | odd_text.map(str.encode) | st.binary(min_size=1, max_size=8)
    )


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes], pieces: list[str]) -> bytes:
    """A valid sample, then up to six edits: cut, insert, delete, repeat a stretch, change a byte."""
    data = draw(st.sampled_from(samples))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(data)))
        end = draw(st.integers(at, min(len(data), at + 80)))
        op = draw(st.sampled_from(("cut", "insert", "delete", "repeat", "byte")))
        if op == "cut":
            data = data[:at]
        elif op == "insert":
            data = data[:at] + draw(_mutation(pieces)) + data[at:]
        elif op == "delete":
            data = data[:at] + data[end:]
        elif op == "repeat":
            data = data[:end] + data[at:end] * draw(st.integers(1, 30)) + data[end:]
        elif at < len(data):
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


SEED = b"""A first abstract about transformers
 spanning two lines, with  extra   spaces.

A second paragraph of the same abstract.

ICML 2020

arXiv:2007.05105v2 - Journal of Things, 2020
Created: 2020-07-09

Another abstract, with no venue line.

arXiv:math/0601001
"""
KAGGLE = (
    json.dumps(
        {
            "id": "0704.0001",
            "submitter": "Pavel Nadolsky",
            "authors": "C. Bal\\'azs, E. L. Berger, P. M. Nadolsky and C.-P. Yuan",
            "title": "Calculation of prompt diphoton production\n  cross sections",
            "comments": "37 pages, 15 figures",
            "journal-ref": "Phys.Rev.D76:013009,2007",
            "doi": "10.1103/PhysRevD.76.013009",
            "report-no": None,
            "categories": "hep-ph math.AG",
            "license": None,
            "abstract": "  A fully differential calculation in\nperturbative QCD.\n",
            "versions": [{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}],
            "update_date": "2008-11-13",
            "authors_parsed": [["Bal\u00e1zs", "C.", ""], ["Berger", "E. L.", ""]],
        }
    )
    + "\n"
).encode()
ATOM_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
    'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom">\n'
)
ATOM_ENTRY = """<entry>
  <id>http://arxiv.org/abs/2201.13452v1</id>
  <title>Asymptotic Analysis for a Nonlinear
   Reaction-Diffusion System</title>
  <summary>  In this paper we study a nonlinear reaction-diffusion system.</summary>
  <category term="math.AP" scheme="http://arxiv.org/schemas/atom"/><category term="math.DS"/>
  <published>2022-01-31T18:59:34Z</published>
  <arxiv:comment>34 pages</arxiv:comment><arxiv:journal_ref>J. Foo 1 (2022)</arxiv:journal_ref>
  <arxiv:doi>10.1000/xyz</arxiv:doi><arxiv:primary_category term="math.AP"/>
  <author><name>Hong-Ming Yin</name></author><author><name>Jun Zou</name></author>
</entry>
"""
ATOM = (
    ATOM_HEAD + '<link href="https://arxiv.org/api/query?search_query=&amp;start=0&amp;max_results=10'
    '&amp;id_list=2201.13455,2201.13452" type="application/atom+xml"/>\n'
    "<opensearch:totalResults>1</opensearch:totalResults>\n" + ATOM_ENTRY + "</feed>\n"
).encode()
OAI_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">\n'
OAI_RECORDS = [
    "<record><header><identifier>oai:arXiv.org:0801.3673</identifier></header><metadata>"
    '<arXivRaw xmlns="http://arxiv.org/OAI/arXivRaw/"><id>0801.3673</id>'
    '<version version="v1"><date>Wed, 23 Jan 2008 21:06:41 GMT</date></version>'
    "<title>Variational Functionals</title><authors>A. B (Inst), C and D (X (Y)), et al</authors>"
    "<categories>quant-ph</categories><comments>4 pages</comments>"
    "<abstract>  Functionals that have local minima\nat the excited states.\n</abstract></arXivRaw>"
    "</metadata></record>",
    "<record><header><identifier>oai:arXiv.org:0801.0002</identifier></header><metadata>"
    '<arXiv xmlns="http://arxiv.org/OAI/arXiv/"><id>0801.0002</id><created>2008-01-02</created>'
    "<authors><author><keyname>Yin</keyname><forenames>Hong-Ming</forenames><suffix>Jr</suffix></author>"
    "</authors><title>T</title><categories>math.AP</categories><doi>10.1/x</doi>"
    "<abstract>An abstract.</abstract></arXiv></metadata></record>",
    "<record><header><identifier>oai:arXiv.org:0801.0003</identifier></header><metadata>"
    '<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>T</dc:title><dc:creator>Zou, Jun</dc:creator>'
    "<dc:description>An abstract.</dc:description><dc:description>Comment: 4 pages</dc:description>"
    "<dc:date>2008-01-03</dc:date><dc:identifier>http://arxiv.org/abs/0801.0003v1</dc:identifier>"
    "<dc:identifier>doi:10.1/y</dc:identifier><dc:identifier>J. Foo 1</dc:identifier></oai_dc:dc>"
    "</metadata></record>",
    '<record><header status="deleted"><identifier>oai:arXiv.org:0801.0004</identifier></header></record>',
]
OAI_TAIL = '<resumptionToken completeListSize="907096" cursor="0">496549|1001</resumptionToken>\n'
OAI = (
    OAI_HEAD + "<ListRecords>\n" + "\n".join(OAI_RECORDS) + OAI_TAIL + "</ListRecords>\n</OAI-PMH>\n"
).encode()
OAI_ERROR = (OAI_HEAD + '<error code="badArgument">Illegal set value</error>\n</OAI-PMH>\n').encode()
PIECES = {
    "seed": ["\n", "\n\n", "arXiv:", "Created: ", " - ", "arXiv:2501.01234v1\nCreated: 2021-01-01\n"],
    "kaggle": ['"', "\\", "\\ud800", "\\udfff", "\\ud83d\\ude00", "\\u0000", "{", "}", "[", "]", ":", ",",
               "1e999", "-0", "NaN", "9" * 5000, "null", "true", '"id": 7', "\n"],
    "atom": [*XML_ODD, "<entry>", "</entry>", "<id>", "</id>", "<summary>", "</summary>", "\n"],
    "oai": [*XML_ODD, "<record>", "</record>", "<metadata>", "<abstract>", "</abstract>", "\n"],
}  # fmt: skip


class Samples(dict[str, list[bytes]]):
    """Valid records per format; short in a failure report, which shows every argument."""

    def __repr__(self) -> str:
        return f"<samples: {', '.join(f'{k} {len(v)}' for k, v in self.items())}>"


@pytest.fixture(scope="module")
def samples(request: pytest.FixtureRequest) -> Samples:
    """Valid records per format: the inline ones above, plus real ones when ../shared/data is there."""
    found = Samples(
        {
            "seed": [SEED, bundled_corpus().read_bytes()[:6000]],
            "kaggle": [KAGGLE],
            "atom": [ATOM],
            "oai": [OAI, OAI_ERROR],
        }
    )
    try:
        formats = request.getfixturevalue("data_dir") / "formats"
    except pytest.skip.Exception:
        return found
    kaggle = (formats / "kaggle-snapshot-head200.jsonl").read_bytes().splitlines(keepends=True)
    found["kaggle"] += [b"".join(kaggle[i : i + 3]) for i in range(0, 30, 3)]
    found["atom"] += [(formats / f"rsxiv_query{s}.xml").read_bytes() for s in ("", "_empty", "_missing_id")]
    oai = (formats / "arxivsync_ListRecords_arXivRaw_1000.xml").read_text(encoding="utf-8")
    start, tail = oai.index("<record>"), oai.rindex("<resumptionToken")
    records = re.findall(r"<record>.*?</record>", oai[:40000], re.DOTALL)
    found["oai"] += [(oai[:start] + "".join(records[i : i + 3]) + oai[tail:]).encode() for i in (0, 3, 6)]
    return found


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def write(folder: Path, data: bytes, gz: bool = False) -> Path:
    path = folder / ("input.gz" if gz else "input")
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


READERS: dict[str, Callable[[Path], Iterable[Record]]] = {
    "seed": read_seed,
    "kaggle": read_kaggle,
    "atom": read_atom,
    "oai": read_oai,
}


# --- structured records: every field of a valid record replaced by odd content ---------------

NUMBERS = st.integers().map(str) | st.sampled_from(
    ["9" * 5000, "\u0661\u0662", "1_000", " 7 ", "-1", "1e3", ""]
)
QUERY_IDS = st.sampled_from([*IDS, "%0A", "%2C", "a%0Ab", "+", ""]) | odd_text
xml_field = st.sampled_from(VALUES).map(escape) | xml_text


@st.composite
def seed_listings(draw: st.DrawFn) -> bytes:
    id_line = st.tuples(st.sampled_from(IDS) | odd_text, st.sampled_from(["", " - "]), odd_text).map(
        lambda t: "arXiv:" + "".join(t)
    )
    line = odd_text | id_line | (st.sampled_from(DATES) | odd_text).map("Created: ".__add__) | st.just("")
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join(draw(st.lists(line, max_size=12))).encode()


JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | any_text | st.sampled_from(VALUES)


def _json_containers(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(kids, max_size=3) | st.dictionaries(any_text, kids, max_size=3)


JSON_VALUE = st.recursive(JSON_LEAF, _json_containers, max_leaves=8)
BIG = "@@big@@"  # placeholder for an integer json.dumps refuses to write (more than 4,300 digits)


@st.composite
def kaggle_lines(draw: st.DrawFn) -> bytes:
    record: Any = json.loads(KAGGLE)
    for key in draw(st.lists(st.sampled_from([*record, "other"]), max_size=6)):
        shapes = [
            JSON_VALUE,
            st.just(BIG),
            st.lists(st.fixed_dictionaries({"created": st.sampled_from(DATES) | any_text}), max_size=2),
            st.lists(st.lists(any_text | st.integers(), max_size=4), max_size=3),
        ]
        if draw(st.booleans()):
            record.pop(key, None)
        else:
            record[key] = draw(st.one_of(shapes))
    if draw(st.integers(0, 9)) == 0:
        record = draw(JSON_VALUE)
    text = json.dumps(record, ensure_ascii=draw(st.booleans())).replace(f'"{BIG}"', "9" * 4301)
    return (
        text.encode("utf-8", "surrogatepass") + b"\n"
    )  # a raw surrogate: invalid UTF-8, as in a broken file


@st.composite
def atom_feeds(draw: st.DrawFn) -> bytes:
    parts = [ATOM_HEAD]
    if draw(st.booleans()):
        ids = ",".join(draw(st.lists(QUERY_IDS, max_size=4)))
        query = f"id_list={ids}&start={draw(NUMBERS)}&max_results={draw(NUMBERS)}"
        query += draw(st.sampled_from(["", "&search_query=all:x"]))
        parts.append(f'<link href="https://arxiv.org/api/query?{escape(query, {chr(34): "&quot;"})}"/>')
    if draw(st.booleans()):
        parts.append(f"<opensearch:totalResults>{escape(draw(NUMBERS))}</opensearch:totalResults>")
    for _ in range(draw(st.integers(0, 3))):
        tags = ("id", "title", "summary", "published", "arxiv:comment", "arxiv:journal_ref", "arxiv:doi")
        fields = [f"<{tag}>{draw(xml_field)}</{tag}>" for tag in tags if draw(st.integers(0, 3))]
        for tag in draw(st.lists(st.sampled_from(["category", "arxiv:primary_category"]), max_size=3)):
            fields.append(f'<{tag} term="{draw(xml_attr)}"/>')
        fields += [f"<author><name>{draw(xml_field)}</name></author>" for _ in range(draw(st.integers(0, 3)))]
        parts.append("<entry>" + "".join(draw(st.permutations(fields))) + "</entry>\n")
    return ("".join(parts) + "</feed>\n").encode()


def _oai_body(draw: st.DrawFn, kind: str) -> str:
    def fields(*tags: str) -> str:
        return "".join(f"<{t}>{draw(xml_field)}</{t}>" for t in tags if draw(st.integers(0, 3)))

    if kind == "arXivRaw":
        versions = "".join(
            f'<version version="{draw(xml_attr)}">{fields("date")}</version>'
            for _ in range(draw(st.integers(0, 2)))
        )
        inner = fields("id", "title", "authors", "categories", "comments", "journal-ref", "doi", "abstract")
        return f'<arXivRaw xmlns="http://arxiv.org/OAI/arXivRaw/">{versions}{inner}</arXivRaw>'
    if kind == "arXiv":
        authors = "".join(
            f"<author>{fields('keyname', 'forenames', 'suffix')}</author>"
            for _ in range(draw(st.integers(0, 3)))
        )
        inner = fields("id", "created", "title", "categories", "comments", "journal-ref", "doi", "abstract")
        return f'<arXiv xmlns="http://arxiv.org/OAI/arXiv/"><authors>{authors}</authors>{inner}</arXiv>'
    if kind == "dc":
        repeated = ["dc:title", "dc:date"] + draw(
            st.lists(st.sampled_from(["dc:creator", "dc:description", "dc:identifier"]), max_size=6)
        )
        return (
            '<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/">{fields(*repeated)}</oai_dc:dc>'
        )
    return f"<{kind}>{draw(xml_field)}</{kind}>"


@st.composite
def oai_responses(draw: st.DrawFn) -> bytes:
    records = []
    for _ in range(draw(st.integers(0, 3))):
        status = draw(st.sampled_from(["", ' status="deleted"', ' status="x"']))
        header = f"<header{status}><identifier>{draw(xml_field)}</identifier></header>"
        kind = draw(st.sampled_from(["arXivRaw", "arXiv", "dc", "mods"]))
        metadata = f"<metadata>{_oai_body(draw, kind)}</metadata>" if draw(st.integers(0, 5)) else ""
        records.append(f"<record>{header}{metadata}</record>")
    extra = ""
    if draw(st.booleans()):
        extra += f'<error code="{draw(xml_attr)}">{draw(xml_field)}</error>'
    if draw(st.booleans()):
        extra += f'<resumptionToken completeListSize="{draw(xml_attr)}">{draw(xml_field)}</resumptionToken>'
    return (OAI_HEAD + "<ListRecords>" + "\n".join(records) + extra + "</ListRecords></OAI-PMH>\n").encode()


STRUCTURED = {"seed": seed_listings(), "kaggle": kaggle_lines(), "atom": atom_feeds(), "oai": oai_responses()}


# --- the readers ------------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=600), gz=st.booleans(), fmt=st.sampled_from([*FORMATS, "bogus"]))
def test_read_papers_survives_arbitrary_bytes(scratch: Path, data: bytes, gz: bool, fmt: str) -> None:
    path = write(scratch, data, gz)
    drain(lambda: read_papers(path, fmt))


@pytest.mark.parametrize("fmt", READERS)
@FUZZ
@given(data=st.data())
def test_reader_survives_mutated_records(
    scratch: Path, samples: dict[str, list[bytes]], fmt: str, data: st.DataObject
) -> None:
    raw = data.draw(mutated(samples[fmt], PIECES[fmt]) | STRUCTURED[fmt], label="input")
    path = write(
        scratch,
        raw,
        gz=data.draw(st.integers(0, 4)) == 0,
    )
    drain(lambda: READERS[fmt](path))
    drain(lambda: read_papers(path))  # detection, then whichever reader it picks


@FUZZ
@given(data=st.data())
def test_broken_gzip_is_a_clean_error(
    scratch: Path, samples: dict[str, list[bytes]], data: st.DataObject
) -> None:
    fmt = data.draw(st.sampled_from(sorted(READERS)))
    packed = gzip.compress(data.draw(st.sampled_from(samples[fmt])), mtime=0)
    path = write(scratch, data.draw(mutated([packed], ["\x1f\x8b", "\x00"])))
    drain(lambda: read_papers(path))
    drain(lambda: READERS[fmt](path))


@pytest.mark.parametrize("fmt", ["atom", "oai"])
@FUZZ
@given(data=st.data())
def test_xml_parsers_survive_any_chunking(
    samples: dict[str, list[bytes]], fmt: str, data: st.DataObject
) -> None:
    """What ingest/fetch.py does: parse a response body given as bytes, here cut at arbitrary points."""
    raw = data.draw(mutated(samples[fmt], PIECES[fmt]) | STRUCTURED[fmt], label="input")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=4)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    if data.draw(st.booleans()):
        chunks = [c.decode("utf-8", "replace") for c in chunks]  # type: ignore[misc]
    parse = parse_atom if fmt == "atom" else parse_oai
    drain(lambda: parse(chunks, "https://export.arxiv.org/x"))


@FUZZ
@given(
    raw=st.binary(max_size=300) | STRUCTURED["atom"] | STRUCTURED["oai"],
    root=st.sampled_from(["feed", "OAI-PMH", "entry", "x"]),
    depth=st.integers(0, 3),
)
def test_xmlstream_elements_yield_or_refuse_cleanly(raw: bytes, root: str, depth: int) -> None:
    with time_limit():
        try:
            for line, element in elements([raw], "src", root, "a test document", depth):
                assert line >= 1 and element.tag
        except AssistantError as exc:
            assert one_line(str(exc))


@FUZZ
@given(data=st.binary(max_size=600) | seed_listings(), gz=st.booleans())
def test_textio_lines_are_the_file(scratch: Path, data: bytes, gz: bool) -> None:
    path = write(scratch, data, gz)
    packed = not gz and data.startswith(GZIP_MAGIC)  # read as gzip, whatever its name
    try:
        start = head(path)
        got = list(lines(path))
    except AssistantError as exc:
        assert one_line(str(exc)) and (packed or b"\x00" in data[:4096])
        return
    if packed:
        return
    assert start == data[:4096]
    assert [n for n, _, _ in got] == list(range(1, len(got) + 1))
    assert all((text is None) == bool(problem) for _, text, problem in got)
    if all(text is not None for _, text, _ in got):
        assert "".join(text or "" for _, text, _ in got) == data.decode("utf-8")


# Inputs that crashed a reader, or made it take minutes, before the fixes this file led to.
ARXIV_RAW = OAI_HEAD + "<ListRecords>" + OAI_RECORDS[0] + "</ListRecords></OAI-PMH>"
FOUND = {
    "number of 4,301 digits": ("kaggle", '{"id": "1", "abstract": "a", "n": ' + "9" * 4301 + "}"),
    "lone surrogate escapes": (
        "kaggle",
        json.dumps({"id": "1\ud800", "abstract": "\udfff", "categories": "\ud800"}),
    ),
    "year out of range": (
        "kaggle",
        json.dumps({"id": "1", "abstract": "a", "versions": [{"created": DATES[4]}]}),
    ),
    "id that is only a prefix": ("kaggle", json.dumps({"id": "arXiv:", "abstract": "a"})),
    "id across lines": ("kaggle", json.dumps({"id": "1\n2"})),
    "version date out of range": ("oai", ARXIV_RAW.replace("Wed, 23 Jan 2008 21:06:41 GMT", DATES[4])),
    "nested parentheses in authors": ("oai", ARXIV_RAW.replace("A. B (Inst)", "(" * 50_000 + ")" * 50_000)),
    "spaced affiliations": ("oai", ARXIV_RAW.replace("A. B (Inst), C and D (X (Y)), et al", "() " * 50_000)),
    "error code across lines": ("oai", OAI_ERROR.decode().replace("badArgument", "bad&#10;Argument")),
    "oai id that is only a prefix": ("oai", ARXIV_RAW.replace("0801.3673", "")),
    "atom id that is only a prefix": (
        "atom",
        ATOM.decode().replace("http://arxiv.org/abs/2201.13452v1", "arXiv:"),
    ),
    "asked-for id across lines": ("atom", ATOM.decode().replace("2201.13455", "2201%0A13455")),
}


@pytest.mark.parametrize(("fmt", "raw"), FOUND.values(), ids=list(FOUND))
def test_inputs_that_broke_a_reader(scratch: Path, fmt: str, raw: str) -> None:
    path = write(scratch, raw.encode())
    assert drain(lambda: READERS[fmt](path))


# --- deep nesting and huge fields -------------------------------------------------------------


@HUGE
@given(
    opener=st.sampled_from(["[", '{"a":', '{"id": "1", "abstract": [', "<a>", "<entry>"]),
    depth=st.integers(1, 100_000),
    closed=st.booleans(),
    fmt=st.sampled_from(["kaggle", "atom", "oai"]),
)
def test_deep_nesting(scratch: Path, opener: str, depth: int, closed: bool, fmt: str) -> None:
    if opener.startswith("<"):
        depth = min(depth, 20_000)  # ~0.1 s per 20k levels: the limit is the test's time, not the reader
        closer = "</" + opener[1:]
        nest = opener * depth + "x" + (closer * depth if closed else "")
        wrap = {"atom": ATOM_HEAD + "<entry><id>1</id><summary>{}</summary></entry></feed>", "kaggle": "{}"}
        wrap["oai"] = (
            OAI_HEAD + "<ListRecords>" + OAI_RECORDS[0].replace("4 pages", "{}") + "</ListRecords></OAI-PMH>"
        )
    else:
        closer = {"[": "]", '{"a":': "}", '{"id": "1", "abstract": [': "]}"}[opener]
        nest = opener * depth + "1" + (closer * depth if closed else "")
        wrap = {"kaggle": "{}", "atom": "{}", "oai": "{}"}
    path = write(scratch, wrap[fmt].replace("{}", nest, 1).encode())
    drain(lambda: read_papers(path))
    drain(lambda: READERS[fmt](path))


HUGE_UNIT = st.sampled_from(
    ["() ", "(", ")", ", ", " and ", "et al ", "arXiv:", " ", "\n", "a", "[arXiv: "]
) | st.text("() ,;[]:.-/\tand\nv019x\u00e9\u202e", min_size=1, max_size=6)


def _huge_input(fmt: str, where: int, big: str) -> bytes:
    """A valid record of `fmt` with its `where`-th field (modulo the count) set to `big`."""
    if fmt == "seed":
        shapes = [
            f"{big}\n\narXiv:1",
            f"a\n\narXiv:{big}",
            f"a\n\narXiv:1 - {big}",
            f"a\n\narXiv:1\nCreated: {big}",
        ]
        return shapes[where % len(shapes)].encode()
    if fmt == "kaggle":
        record = json.loads(KAGGLE)
        key = [*record, "authors_parsed"][where % (len(record) + 1)]
        record[key] = [[big, big]] if key == "authors_parsed" else big
        return json.dumps(record).encode()
    text = escape(big, {'"': "&quot;"})
    raw = (ATOM if fmt == "atom" else OAI).decode()
    targets = re.findall(r">([^<>]+)<|=\"([^\"]+)\"", raw)
    first, second = targets[where % len(targets)]
    old = f">{first}<" if first else f'="{second}"'
    new = f">{text}<" if first else f'="{text}"'
    return raw.replace(old, new, 1).encode()


@pytest.mark.parametrize("fmt", READERS)
@HUGE
@given(unit=HUGE_UNIT, where=st.integers(0, 100))
def test_huge_fields_read_in_linear_time(scratch: Path, fmt: str, unit: str, where: int) -> None:
    big = unit * (HUGE_CHARS // len(unit))
    path = write(scratch, _huge_input(fmt, where, big))
    items = drain(lambda: READERS[fmt](path))
    assert items or fmt != "kaggle"


@HUGE
@given(
    start=st.sampled_from(["", "[arXiv:", "(arXiv:2501.01234", "arXiv:", "x"]),
    unit=HUGE_UNIT | st.sampled_from(["[arXiv:2501.01234", "(arXiv:1 ", "arXiv: ", "v1", ".pdf", " and"]),
)
@example(start="[arXiv:", unit=" ")  # was quadratic: a lazy match, then `\s*`, on every space
@example(start="x", unit=".pdf")
def test_huge_text_for_ids_and_citations_in_linear_time(start: str, unit: str) -> None:
    big = start + unit * (HUGE_CHARS // len(unit))
    with time_limit():
        normalize_id(big)
        parse_citations(big)
        verify(big, {"2501.01234"})


# --- the chunker -------------------------------------------------------------------------------
# Every paper a reader yields goes through it: it must never raise, print or make a chunk the model
# cannot read whole (titles of hundreds of word pieces made llama-index's splitter raise or print).

_CHUNKERS: dict[tuple[int, int, bool], Chunker] = {}
WORDS = st.sampled_from(["transformer", "zyxoquantum", "été", "漢字", "(a)", "x" * 40, "😀", "-"])
LONG_TITLES = st.builds(lambda word, n: " ".join([word] * n), WORDS, st.integers(50, 700))


def chunk_checked(paper: Paper, chunk: int = 254, overlap: int = 32, titled: bool = True) -> list[TextNode]:
    """Chunk `paper`; check the ids, that nothing was printed and every chunk fits the model."""
    key = (chunk, overlap, titled)
    if key not in _CHUNKERS:
        settings = ChunkingSettings(chunk_tokens=chunk, overlap_tokens=overlap, include_title=titled)
        _CHUNKERS[key] = Chunker(settings)
    printed = io.StringIO()
    with time_limit(), contextlib.redirect_stdout(printed):
        nodes = _CHUNKERS[key].nodes(paper)
    assert printed.getvalue() == "", printed.getvalue()  # stdout is the ingest's summary line alone
    assert [n.node_id for n in nodes] == [f"{paper.arxiv_id}#{i}" for i in range(len(nodes))]
    for node in nodes:
        assert len(load_tokenizer().encode(embed_text(node), add_special_tokens=False).ids) <= chunk
    return nodes


@FUZZ
@given(
    title=st.none() | st.text(max_size=400) | LONG_TITLES,
    abstract=st.text(min_size=1, max_size=3000) | LONG_TITLES,
    chunk=st.integers(32, 254),
    overlap=st.integers(0, 64),
    titled=st.booleans(),
)
@example(
    title=" ".join(["transformer"] * 400), abstract="A short abstract.", chunk=254, overlap=32, titled=True
)
@example(
    title=" ".join(["transformer"] * 230), abstract="A short abstract.", chunk=254, overlap=32, titled=True
)
def test_chunker_takes_any_paper(
    title: str | None, abstract: str, chunk: int, overlap: int, titled: bool
) -> None:
    assume(abstract.strip())  # every reader refuses a record without an abstract
    chunk_checked(Paper("2501.00001", abstract, title=title), chunk, overlap, titled)


@HUGE
@given(unit=HUGE_UNIT | WORDS, where=st.sampled_from(["title", "abstract"]))
def test_huge_papers_chunk_in_linear_time(unit: str, where: str) -> None:
    big = unit * (HUGE_CHARS // 4 // len(unit))
    assume(big.strip())
    fields = {"abstract": "An abstract.", "title": "A title", where: big}
    chunk_checked(Paper("2501.00001", fields["abstract"], title=fields["title"]))


# --- ids --------------------------------------------------------------------------------------

NEW_ID = st.from_regex(r"\A\d{4}\.\d{4,5}\Z")
OLD_ID = st.from_regex(r"\A[a-z][a-z\-]{0,8}(\.[A-Z]{2})?/\d{7}\Z")
PREFIXES = ["", "arXiv:", "ARXIV:", "http://arxiv.org/abs/", "https://export.arxiv.org/pdf/"]


@FUZZ
@given(
    base=NEW_ID | OLD_ID,
    prefix=st.sampled_from(PREFIXES),
    version=st.sampled_from(["", "v1", "v12", "V3"]),
    pdf=st.sampled_from(["", ".pdf"]),
    pad=st.sampled_from(["", " ", "\t", "\n"]),
)
def test_every_spelling_of_an_id_normalises_to_it(
    base: str, prefix: str, version: str, pdf: str, pad: str
) -> None:
    assert normalize_id(f"{pad}{prefix}{base}{version}{pdf}{pad}") == base
    assert normalize_id(base) == base


@FUZZ
@given(
    raw=any_text
    | st.lists(st.sampled_from([*PREFIXES, *IDS, "v2", ".pdf", " ", "v", "."]), max_size=6).map("".join)
)
@example(raw="arXiv: arXiv:2501.01234v2")  # each was one pass short of its normal form
@example(raw="x.pdf .pdf")
def test_normalize_id_is_idempotent_and_stripped(raw: str) -> None:
    once = normalize_id(raw)
    assert normalize_id(once) == once
    assert once == once.strip()
    assert once in raw  # it only ever removes a prefix or a suffix


# --- citations --------------------------------------------------------------------------------

CITE_PIECES = [
    "[arXiv:2305.14387]", "[arXiv:2302.05733v2, arXiv:math/0601001]", "(arXiv:9999.99999; 1111.22222)",
    "arXiv:2305.14387", "arXiv: 0704.0001v3", "[arXiv:", "arXiv:", "2305.14387", "9999.9", "v2", "(", ")",
    "[", "]", ",", ";", " and ", " ", ".", ":", "\n", "[arXiv:]", "[arxiv:x.pdf]",
]  # fmt: skip
RETRIEVABLE = ["2305.14387", "2302.05733", "math/0601001", "0704.0001", "9999.99999", "1111.22222"]
answers = st.lists(st.sampled_from(CITE_PIECES) | any_text, max_size=12).map("".join)


@FUZZ
@given(text=answers)
@example(text="[arXiv:]")  # was [""]
def test_parsed_citations_are_ids_written_in_the_text(text: str) -> None:
    found = parse_citations(text)
    assert len(found) == len(set(found))
    for arxiv_id in found:
        assert arxiv_id and arxiv_id in text and normalize_id(arxiv_id) == arxiv_id


@FUZZ
@given(
    parts=st.lists(
        st.tuples(
            st.text(st.characters(exclude_characters="[]()vV:0123456789"), max_size=10),
            st.sampled_from(RETRIEVABLE),
        ),
        max_size=5,
    )
)
def test_every_well_formed_marker_is_found(parts: list[tuple[str, str]]) -> None:
    text = "".join(f"{filler} [arXiv:{arxiv_id}]" for filler, arxiv_id in parts)
    assert parse_citations(text) == list(dict.fromkeys(arxiv_id for _, arxiv_id in parts))


@FUZZ
@given(text=answers, retrieved=st.sets(st.sampled_from(RETRIEVABLE)))
@example(text="arXiv:9999.9[arXiv:1111.11111]9999", retrieved=set())  # dropping a marker formed a citation
@example(text="arXiv:9999 .99999", retrieved=set())  # so did removing the space before the full stop
@example(text="[arXiv:arXiv:2305.14387]", retrieved={"2305.14387"})
def test_verified_answer_cites_only_retrieved_ids(text: str, retrieved: set[str]) -> None:
    checked = verify(text, retrieved)
    assert set(checked.citations) <= retrieved
    assert not set(checked.dropped) & retrieved
    assert set(parse_citations(checked.text)) <= retrieved  # no marker survives, or forms, unverified
    for arxiv_id in checked.citations:
        assert f"[arXiv:{arxiv_id}]" in checked.text
