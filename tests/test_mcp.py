"""`assistant serve --mcp` driven by the real `mcp` client: tools listed and called, errors, the login."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.embeddings import MiniLMEmbedding
from assistant.ingest import Ingester, bundled_corpus
from assistant.pipeline import Assistant, open_store
from harness.servers import free_port, running
from tests.helpers.cli import cli
from tests.helpers.mcp import TOOL_NAMES, session
from tests.helpers.records import checklist_record
from tests.helpers.settings import make_settings

pytestmark = pytest.mark.slow  # a real `assistant serve --mcp` and MCP client
pytest.importorskip("mcp", reason="needs the MCP extra: pip install -e '.[mcp]' (make test installs it)")

LOGIN = ("ann", "s3cret pw")
STARTUP_SECONDS = 120  # loading the model on 2 shared cores; bounded all the same


@pytest.fixture(scope="module")
def mcp_store(tmp_path_factory: pytest.TempPathFactory, embed: MiniLMEmbedding) -> Path:
    """The bundled abstracts, CheckList with its title, authors and categories from a Kaggle record."""
    folder = tmp_path_factory.mktemp("mcp")
    (folder / "checklist.jsonl").write_text(json.dumps(checklist_record()) + "\n")
    settings = make_settings(folder / "store")
    Ingester(open_store(settings, for_writing=True), embed, settings.chunking).ingest(
        [bundled_corpus(), folder / "checklist.jsonl"]
    )
    return folder / "store"


@pytest.fixture(scope="module")
def server(mcp_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`assistant serve --mcp --auth` on a free local port; yields the MCP URL it prints."""
    port = free_port()
    argv = [sys.executable, "-m", "assistant", "serve", "--store", str(mcp_store), "--port", str(port)]
    argv += ["--mcp", "--auth", ":".join(LOGIN)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_"))}
    env["ASSISTANT_LLM"] = "extractive"
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    # The page answers 200 with its login form once the server is up.
    with running(argv, f"http://127.0.0.1:{port}/", log, STARTUP_SECONDS, env=env):
        url = f"http://127.0.0.1:{port}/gradio_api/mcp/"
        for _ in range(60):  # printed just after the page starts answering
            if f"MCP server (streamable HTTP) at {url}" in log.read_text():
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"serve did not print its MCP URL:\n{log.read_text()}")
        yield url


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_tools_are_listed_typed_and_described(server: str) -> None:
    tools, _ = session(server, [], basic(*LOGIN))
    assert {t.name for t in tools} == TOOL_NAMES, "only the three tools, not the page's own endpoints"
    by_name = {t.name: t for t in tools}
    search = by_name["search_papers"].inputSchema
    assert search["required"] == ["query"]
    assert search["properties"]["top_k"] == {
        "type": "integer",
        "description": "How many papers to return, best first.",
        "default": 5,
    }
    assert {"type": "array", "items": {"type": "string"}} in search["properties"]["categories"]["oneOf"]
    assert set(search["properties"]) == {"query", "top_k", "categories", "since", "until", "author"}
    assert set(by_name["ask"].inputSchema["properties"]) == {
        "question", "top_k", "categories", "since", "until", "author"
    }  # fmt: skip
    assert by_name["get_paper"].inputSchema["required"] == ["arxiv_id"]
    assert "references (one BibTeX entry per cited paper)" in by_name["ask"].description
    assert all(p.get("description") for t in tools for p in t.inputSchema["properties"].values())


def test_each_tool_answers_like_the_command_line(
    server: str,
    mcp_store: Path,
    embed: MiniLMEmbedding,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASSISTANT_LLM", "extractive")  # as the server answers
    question = "How can NLP models be tested beyond held-out accuracy?"
    _, (found, filtered, answered, paper) = session(
        server,
        [
            ("search_papers", {"query": "behavioral testing of NLP models", "top_k": 2}),
            ("search_papers", {"query": "learning rates", "categories": ["cs.CL"], "since": "2020-01-01"}),
            ("ask", {"question": question, "top_k": 3}),
            ("get_paper", {"arxiv_id": "arXiv:2005.04118v1"}),
        ],
        basic(*LOGIN),
    )
    assert not any(r.isError for r in (found, filtered, answered, paper))
    papers = json.loads(found.content[0].text)
    assert len(papers) == 2 and papers[0]["arxiv_id"] == "2005.04118"
    assert (
        papers[0]["title"].startswith("Beyond Accuracy") and papers[0]["authors"][0] == "Marco Tulio Ribeiro"
    )
    assert papers[0]["date"] == "2020-05-08" and papers[0]["categories"] == ["cs.CL", "cs.LG"]
    assert set(papers[0]) == {"arxiv_id", "title", "authors", "date", "categories", "score", "text"}
    assert [p["arxiv_id"] for p in json.loads(filtered.content[0].text)] == ["2005.04118"]

    code, printed, _ = cli(capsys, "ask", question, "--json", "--top-k", "3", "--store", str(mcp_store))
    assert code == 0
    tool_json, cli_json = json.loads(answered.content[0].text), json.loads(printed)
    assert set(tool_json["timings"]) == set(cli_json["timings"])  # seconds differ from run to run
    del tool_json["timings"], cli_json["timings"]
    assert tool_json == cli_json, "the same JSON as ask --json"
    assert "@misc{ribeiro2020accuracybehavioraltesting," in json.loads(printed)["references"][0]

    record = json.loads(paper.content[0].text)
    stored = Assistant(make_settings(mcp_store), embed_model=embed).paper("2005.04118")
    assert record["abstract"] == stored.abstract and record["journal_ref"] == stored.journal_ref
    assert record["url"] == "https://arxiv.org/abs/2005.04118" and record["authors"] == list(stored.authors)


def test_bad_arguments_are_clear_tool_errors(server: str) -> None:
    bad = [
        ("get_paper", {"arxiv_id": "9999.99999"}, "arXiv:9999.99999 is not in the store"),
        ("get_paper", {"arxiv_id": "CheckList"}, "'CheckList' is not an arXiv id; write it like 2005.04118"),
        ("search_papers", {"query": "x", "since": "2020-13-45"}, "filter since='2020-13-45' is not a date"),
        ("ask", {"question": "   "}, "the question is empty"),
        ("search_papers", {"query": "x", "top_k": "many"}, "'many' is not of type 'integer'"),
        ("get_paper", {}, "'arxiv_id' is a required property"),
        ("api_chat", {"message": "hi"}, "Unknown tool"),  # /chat is for gradio_client only
    ]
    _, results = session(server, [(name, args) for name, args, _ in bad], basic(*LOGIN))
    for (name, _, says), result in zip(bad, results, strict=True):
        assert result.isError, name
        (content,) = result.content
        assert says in content.text and "Traceback" not in content.text and "\n" not in content.text
    # Still serving after all that.
    _, (after,) = session(server, [("get_paper", {"arxiv_id": "2007.05105"})], basic(*LOGIN))
    assert not after.isError


def test_the_login_guards_the_mcp_endpoints(server: str) -> None:
    for headers in (None, basic("ann", "wrong"), basic("bob", LOGIN[1])):
        with pytest.raises(BaseException) as refused:  # the client raises a group of HTTP errors
            session(server, [("get_paper", {"arxiv_id": "2005.04118"})], headers)
        assert "401 Unauthorized" in repr(refused.value)
    for path in ("", "schema", "sse", "messages/"):
        with pytest.raises(urllib.error.HTTPError) as http:
            urllib.request.urlopen(server + path, timeout=30)
        assert http.value.code == 401 and http.value.headers["WWW-Authenticate"].startswith("Basic")
    # Gradio's own login still guards its HTTP API, the tools' endpoints included.
    from gradio_client import Client

    with pytest.raises(Exception, match="(?i)login|credentials|unauthori"):
        Client(server.removesuffix("gradio_api/mcp/"), verbose=False).predict(
            "2005.04118", api_name="/get_paper"
        )
    signed_in = Client(server.removesuffix("gradio_api/mcp/"), auth=LOGIN, verbose=False)
    assert json.loads(signed_in.predict("2005.04118", api_name="/get_paper"))["arxiv_id"] == "2005.04118"


def test_serve_mcp_without_the_extra_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from assistant.cli import main

    monkeypatch.setitem(sys.modules, "mcp", None)  # as if the extra were not installed
    assert main(["serve", "--mcp", "--store", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--mcp needs the MCP extra: pip install 'arxiv-assistant[mcp]'" in err
    assert not (tmp_path / "none").exists(), "refused before anything was opened"
