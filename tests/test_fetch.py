"""Live fetching against a real HTTP server on 127.0.0.1 that serves real recorded arXiv responses."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.embeddings import MockEmbedding

from assistant import cli
from assistant.config import Settings
from assistant.embeddings import MiniLMEmbedding
from assistant.errors import FetchError, InputError
from assistant.ingest import Ingester, IngestReport
from assistant.ingest.fetch import Client, HarvestState, LiveRequest, OaiHarvest, fetch, retry_after
from assistant.pipeline import open_store
from assistant.store import keyword
from tests.helpers.cli import run
from tests.helpers.formats import OAI_FILE, error_feed
from tests.helpers.settings import make_settings

OAI_PAGE = 250  # the 1,000 recorded records, served as four pages
BAD_TOKEN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
    '<responseDate>2025-01-02T00:00:00Z</responseDate><request verb="ListRecords">http://127.0.0.1/oai</request>'
    '<error code="badResumptionToken">The value of the resumptionToken argument is invalid or expired.'
    "</error>"
    "</OAI-PMH>\n"
)


class StandIn:
    """Plays export.arxiv.org and oaipmh.arxiv.org with their real recorded answers, paged as they page."""

    def __init__(self, data_dir: Path) -> None:
        formats = data_dir / "formats"
        raw = (formats / OAI_FILE).read_text(encoding="utf-8")
        records = re.findall(r"<record>.*?</record>\n", raw, re.DOTALL)
        head, pages = raw[: raw.index("<record>")], len(records) // OAI_PAGE
        self.oai: dict[str, str] = {}  # resumptionToken ("" for the first request) -> page
        for k in range(pages):
            token = f"page-{k + 1}" if k + 1 < pages else ""
            self.oai[f"page-{k}" if k else ""] = (
                head
                + "".join(records[k * OAI_PAGE : (k + 1) * OAI_PAGE])
                + f'<resumptionToken completeListSize="{len(records)}" cursor="{k * OAI_PAGE}">{token}'
                + "</resumptionToken>\n</ListRecords>\n</OAI-PMH>\n"
            )
        feed = (formats / "rsxiv_query.xml").read_text(encoding="utf-8")
        self.feed_head = feed[: feed.index("  <entry>")]
        self.entries = re.findall(r"  <entry>.*?</entry>\n", feed, re.DOTALL)
        self.by_ids = (formats / "rsxiv_query_missing_id.xml").read_text(encoding="utf-8")
        self.error = error_feed(data_dir)
        self.faults: dict[str, list[str]] = {}  # request key -> what goes wrong on its next requests
        self.log: list[tuple[float, str, dict[str, str]]] = []  # (arrival, request key, params)

    def answer(self, path: str, params: dict[str, str]) -> tuple[str, str | None]:
        """Return (request key, body or None for 404) for one GET."""
        if path == "/oai":
            token = params.get("resumptionToken", "")
            return token or "first", self.oai.get(token, BAD_TOKEN)
        if path == "/api/query" and "id_list" in params:
            return "ids", self.by_ids if params["id_list"].startswith("2201.") else self.error
        if path == "/api/query":
            start, size = int(params["start"]), int(params["max_results"])
            return f"start={start}", self.feed_head + "".join(
                self.entries[start : start + size]
            ) + "</feed>\n"
        return "unknown", None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        app = self.server.app
        key, body = app.answer(url.path, params)
        app.log.append((time.monotonic(), key, params))
        fault = app.faults.get(key, [None]).pop(0) if app.faults.get(key) else None
        if fault is not None and fault.startswith("503"):
            self.send_response(503)
            if ":" in fault:
                self.send_header("Retry-After", fault.split(":")[1])
            self.end_headers()
            return
        data = (body or "not found").encode()
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        # "drop": the connection dies half-way through the answer.
        self.wfile.write(data[: len(data) // 2] if fault == "drop" else data)

    def log_message(self, *args: object) -> None:
        pass  # keep the test output clean


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: StandIn


@pytest.fixture
def arxiv(data_dir: Path) -> Iterator[tuple[StandIn, str]]:
    """The stand-in server on a free port of 127.0.0.1, and its base URL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.app = StandIn(data_dir)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.app, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def settings_for(store: Path, base: str, **fetch: object) -> Settings:
    """Settings pointing at the stand-in, with the politeness delay and backoff shortened for tests."""
    quick = {"delay": 0.2, "backoff": 0.05, "retries": 2, "timeout": 5, "page_size": 4, **fetch}
    overrides = {f"fetch.{k}": v for k, v in quick.items()}
    return make_settings(
        store, **{"fetch.api_url": f"{base}/api/query", "fetch.oai_url": f"{base}/oai", **overrides}
    )


def setup(
    arxiv: tuple[StandIn, str], store: Path, embed: BaseEmbedding, **fetch: object
) -> tuple[StandIn, Settings, Ingester]:
    """The stand-in, settings pointing at it, and an ingester into a new store."""
    app, base = arxiv
    settings = settings_for(store, base, **fetch)
    return app, settings, Ingester(open_store(settings, for_writing=True), embed, settings.chunking)


def run_fetch(settings: Settings, ingester: Ingester, request: LiveRequest) -> tuple[IngestReport, list[str]]:
    report, said = IngestReport(), list[str]()
    fetch(ingester, report, settings.fetch, request, said.append)
    return report, said


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_oai_harvest_pages_through_survives_a_drop_and_resumes(
    arxiv: tuple[StandIn, str], tmp_path: Path
) -> None:
    app, base = arxiv
    settings = settings_for(tmp_path / "store", base, delay=0.01)
    # 1,000 real embeddings take minutes on a CPU; paging and resuming do not depend on the vectors.
    ingester = Ingester(
        open_store(settings, for_writing=True), MockEmbedding(embed_dim=384), settings.chunking
    )
    store = ingester.store
    request = LiveRequest(oai_set="physics", since="2008-01-01")
    key = OaiHarvest(Client(settings.fetch), settings.fetch, store, "physics", "2008-01-01").key
    app.faults["page-2"] = ["drop"] * 3  # more than the 2 retries: the harvest stops on page 3

    with pytest.raises(
        FetchError, match=r"connection lost \(IncompleteRead\) on all 3 tries.*The 500 papers"
    ):
        run_fetch(settings, ingester, request)
    assert app.log[0][2] == {
        "verb": "ListRecords",
        "metadataPrefix": "arXivRaw",
        "set": "physics",
        "from": "2008-01-01",
    }
    assert (store.paper_count(), HarvestState(store.path).token(key)) == (500, "page-2")

    app.log.clear()
    report, said = run_fetch(settings, ingester, request)
    assert [k for _, k, _ in app.log] == ["page-2", "page-3"]  # resumed: pages 1-2 not fetched again
    assert said == [f"resuming the interrupted harvest ({key}) at its saved resumptionToken"]
    assert (report.added, report.unchanged, report.bad) == (500, 0, 0)
    assert HarvestState(store.path).token(key) is None  # complete: the next run starts afresh

    ids = re.findall(r"<identifier>oai:arXiv.org:(.*?)</identifier>", "".join(app.oai.values()))
    assert len(set(ids)) == 1000
    assert len(store.fingerprints(ids)) == store.paper_count() == 1000  # nothing lost, nothing twice
    again, _ = run_fetch(settings, ingester, request)
    assert (again.added, again.unchanged, store.paper_count()) == (0, 1000, 1000)


def test_refused_resumption_token_is_forgotten(arxiv: tuple[StandIn, str], tmp_path: Path) -> None:
    app, base = arxiv
    settings = settings_for(tmp_path / "store", base)
    ingester = Ingester(
        open_store(settings, for_writing=True), MockEmbedding(embed_dim=384), settings.chunking
    )
    harvest = OaiHarvest(Client(settings.fetch), settings.fetch, ingester.store, "cs", None, None, "arXiv")
    harvest.state.save(harvest.key, "expired-yesterday")
    with pytest.raises(FetchError, match="refused the resumptionToken .* run the same command again"):
        run_fetch(settings, ingester, LiveRequest(oai_set="cs", oai_format="arXiv"))
    assert app.log[0][2] == {"verb": "ListRecords", "resumptionToken": "expired-yesterday"}
    assert harvest.state.token(harvest.key) is None


def test_api_search_pages_politely_and_retries_503(
    arxiv: tuple[StandIn, str], tmp_path: Path, embed: MiniLMEmbedding
) -> None:
    app, settings, ingester = setup(arxiv, tmp_path / "store", embed)
    app.faults["start=4"] = ["503:1"]  # busy once, asking for a 1 s pause
    report, said = run_fetch(settings, ingester, LiveRequest(query="all:electron AND all:proton", limit=10))
    assert (report.added, report.bad, ingester.store.paper_count()) == (10, 0, 10)
    assert [k for _, k, _ in app.log] == ["start=0", "start=4", "start=4", "start=8"]
    assert app.log[0][2] == {"search_query": "all:electron AND all:proton", "start": "0", "max_results": "4"}
    assert app.log[-1][2]["max_results"] == "2"  # --max 10: the last page asks only for what is left
    gaps = [later[0] - earlier[0] for earlier, later in zip(app.log, app.log[1:], strict=False)]
    assert gaps[1] >= 1.0  # Retry-After honoured
    assert min(gaps) >= 0.2  # never faster than the politeness delay
    assert said == ["fetched the first 10 of 7432 results; pass --max N for more"]
    assert keyword.up_to_date(ingester.store)  # BM25 caught up and saved, as after a file


def test_api_ids_report_the_missing_and_errors_stop(
    arxiv: tuple[StandIn, str], tmp_path: Path, embed: MiniLMEmbedding
) -> None:
    app, settings, ingester = setup(arxiv, tmp_path / "store", embed)
    ids = "arXiv:2201.13455, 2201.13452v1,2201.13453 2201.13454"
    report, said = run_fetch(settings, ingester, LiveRequest(ids=ids))
    assert app.log[0][2] == {"id_list": "2201.13455,2201.13452,2201.13453,2201.13454", "max_results": "4"}
    assert (report.added, report.bad) == (1, 3)
    assert [s.split(": ", 1)[1] for s in said][0] == (
        "arXiv:2201.13455 was asked for but the API returned no entry for it; check the id"
    )
    with pytest.raises(FetchError, match=r"the arXiv API answered: incorrect id format for 1234.12345; fix"):
        run_fetch(settings, ingester, LiveRequest(ids="1234.12345"))


@pytest.mark.slow
def test_retries_run_out_with_a_clear_message(arxiv: tuple[StandIn, str], tmp_path: Path) -> None:
    app, base = arxiv
    settings = settings_for(tmp_path / "store", base, retries=1)
    app.faults["ids"] = ["503", "503"]
    with pytest.raises(
        FetchError, match=r"/api/query\?id_list=2201.13452&max_results=1: HTTP 503 on all 2 tries"
    ):
        Client(settings.fetch).get(f"{base}/api/query?id_list=2201.13452&max_results=1")


@pytest.mark.slow
def test_unreachable_host_fails_fast_and_clearly(tmp_path: Path) -> None:
    port = closed_port()
    settings = settings_for(tmp_path / "store", f"http://127.0.0.1:{port}", delay=3.0, backoff=10.0)
    started = time.monotonic()
    with pytest.raises(FetchError, match=rf"^cannot reach 127.0.0.1:{port} \(.*refused\); check the network"):
        Client(settings.fetch).get(settings.fetch.api_url + "?search_query=all:x")
    assert time.monotonic() - started < 2  # no retry loop on a host that is not there


def test_retry_after_forms() -> None:
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: go now
    assert retry_after("soon") is None and retry_after(None) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "x", "oai_set": "cs"}, "only one of"),
        ({"query": "x", "since": "2025-01-01"}, "--from, --until and --oai-format go with --oai-set"),
        ({"oai_set": "cs", "limit": 5}, "--max goes with --arxiv-query"),
        ({"query": "x", "limit": 0}, "at least 1"),
        (
            {"oai_set": "cs", "since": "2025-13-01"},
            "--from '2025-13-01' is not a date; give it as YYYY-MM-DD",
        ),
        ({"ids": " , "}, "--arxiv-ids names no id"),
    ],
)
def test_live_flags_are_checked_before_anything_runs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        LiveRequest(**kwargs)  # type: ignore[arg-type]


def test_cli_ingest_flag_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    for args in (
        ["ingest", "--store", store],
        ["ingest", "file.txt", "--oai-set", "cs", "--store", store],
        ["ingest", "--arxiv-query", "x", "--until", "2025-01-01", "--store", store],
    ):
        assert cli.main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("assistant: error: "), err
    assert not Path(store).exists()  # refused before opening anything


@pytest.mark.slow
def test_cli_fetches_from_the_stand_in_and_reports_unreachable(
    arxiv: tuple[StandIn, str], tmp_path: Path
) -> None:
    _, base = arxiv
    env = {"ASSISTANT_ARXIV_API_URL": f"{base}/api/query", "ASSISTANT_FETCH_DELAY": "0.05"}
    store = str(tmp_path / "store")
    out = run(
        "ingest", "--arxiv-query", "all:electron AND all:proton", "--max", "4", "--store", store, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "added 4, updated 0, unchanged 0, bad 0"
    assert out.stderr.strip() == "fetched the first 4 of 7432 results; pass --max N for more"

    env["ASSISTANT_ARXIV_API_URL"] = f"http://127.0.0.1:{closed_port()}/api/query"
    out = run("ingest", "--arxiv-ids", "2305.14387", "--store", store, env=env)
    assert out.returncode == 1
    assert out.stdout.strip() == "added 0, updated 0, unchanged 0, bad 0"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("assistant: error: cannot reach 127.0.0.1:"), out.stderr
