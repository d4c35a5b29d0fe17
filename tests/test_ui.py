"""The web chat: rendering, the streaming callback, and `assistant serve` driven by a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import bibtexparser
import pytest

from assistant.embeddings import MiniLMEmbedding
from assistant.ingest import Ingester, bundled_corpus
from assistant.llms.prompts import NOT_FOUND
from assistant.pipeline import Assistant, open_store
from assistant.schema import Answer, Evidence, Paper, Passage, Sentence
from assistant.web.render import escape_markdown, plain_text, reply_markdown, sources_html
from harness.servers import free_port, running
from tests.helpers.fake_llm import fake_backend
from tests.helpers.settings import ROOT, make_settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Sets `window.__pwned` if any of it runs; must show as text instead.
EVIL_ID = "2401.99999"
EVIL = (
    'Zebra transducers <img src=x onerror="window.__pwned=1"> convert striped light into sound. '
    "We show that zebra transducers <script>window.__pwned=2</script> work at room temperature. "
    "Zebra transducers ${window.__pwned=3} [click](javascript:window.__pwned=4) are cheap."
)
EVIL_QUESTION = "What do zebra transducers convert striped light into?"
STARTUP_SECONDS = 120  # loading models and indexing on 2 shared cores; bounded all the same
ANSWER_MS = 60_000
# `UI_SCREENSHOT=docs/screenshot.png pytest tests/test_ui.py` refreshes the README's picture.
SCREENSHOT = os.environ.get("UI_SCREENSHOT")


# --- rendering, no server ------------------------------------------------------------------


def test_untrusted_text_becomes_literal_markdown() -> None:
    text = '<img src=x onerror="alert(1)"> **bold** [x](javascript:alert(1)) `code` a_b'
    escaped = escape_markdown(text)
    assert "<" not in escaped and "[x](" not in escaped and "**" not in escaped
    assert plain_text(escaped) == text


def test_reply_links_verified_citations_and_round_trips() -> None:
    text = "AdaScale adapts learning rates [arXiv:2007.05105]. Old style [arXiv:hep-th/9901001]."
    markdown = reply_markdown(text)
    assert "[arXiv:2007.05105](https://arxiv.org/abs/2007.05105)" in markdown
    assert "(https://arxiv.org/abs/hep-th/9901001)" in markdown
    assert "https://" not in reply_markdown(text, link=False)  # not verified yet: no link
    assert plain_text(markdown) == text


def test_sources_panel_escapes_and_shows_every_notice() -> None:
    passage = Passage(
        "2401.99999",
        "<b>Title</b>",
        0.5,
        "<script>x()</script>",
        {"date": 20240102, "categories": ["cs.CL"]},
    )
    answer = Answer(
        "q",
        "t [arXiv:2401.99999]",
        ["2401.99999"],
        [passage],
        "fake",
        dropped_citations=["1111.11111"],
        grounded=False,
        warnings=["fake failed; answered with the extractive answerer instead"],
    )
    panel = sources_html(answer)
    assert "<script>" not in panel and "<b>Title" not in panel
    assert "&lt;script&gt;" in panel and "&lt;b&gt;Title" in panel
    for shown in ("2024-01-02", "cs.CL", "0.50", "cited", "arXiv:1111.11111", "answered with the extractive"):
        assert shown in panel
    assert "cite no retrieved paper" in panel and "Answered by <b>fake</b>" in panel


def test_sources_panel_shows_the_judgement_beside_each_evidence_sentence() -> None:
    text = "AdaScale adapts learning rates. It was tested on four tasks."
    passage = Passage("2007.05105", "AdaScale SGD", 0.7, text)
    judged = Sentence(
        "AdaScale adapts learning rates [arXiv:2007.05105].",
        ["2007.05105"],
        0.9,
        True,
        [Evidence("2007.05105", "AdaScale adapts learning rates.", 0.9)],
        entailment=0.9731,
    )
    answer = Answer(
        "q", judged.text, ["2007.05105"], [passage], "local:qwen", sentences=[judged], verifier="judge:x"
    )
    panel = sources_html(answer)
    assert '<mark class="aa-evidence">AdaScale adapts learning rates.</mark>' in panel
    assert "entailed 0.97" in panel and panel.count("aa-entailment") == 1
    assert "checked by judge:x" in panel
    unjudged = Answer(
        "q", judged.text, ["2007.05105"], [passage], "fake", sentences=[replace(judged, entailment=None)]
    )
    assert "entailed" not in sources_html(unjudged) and "checked by" not in sources_html(unjudged)


def test_transcript_links_citations_and_lists_references_once() -> None:
    from assistant.web.transcript import chat_markdown

    titled = Paper("2005.04118", "x", "Beyond Accuracy", ("Marco Tulio Ribeiro",), ("cs.CL",), "2020-05-08")
    messages = [
        {"role": "user", "content": "What is CheckList?"},
        {"role": "assistant", "content": "A testing method [arXiv:2005.04118]. See [arXiv:9999.99999]."},
        {"role": "user", "content": "And its user study?"},
        {"role": "assistant", "content": "Bugs were found [arXiv:2005.04118]."},
    ]
    text = chat_markdown(messages, {"2005.04118": titled}.get)
    assert text.startswith("# Chat with the arXiv assistant\n\n**Question:** What is CheckList?\n")
    assert "**Answer:** A testing method [arXiv:2005.04118](https://arxiv.org/abs/2005.04118)." in text
    references = text.split("## References\n\n")[1].splitlines()
    assert references == [
        "- Marco Tulio Ribeiro (2020). *Beyond Accuracy*. "
        "[arXiv:2005.04118](https://arxiv.org/abs/2005.04118) \\[cs.CL\\].",
        "- [arXiv:9999.99999](https://arxiv.org/abs/9999.99999).",  # no longer stored: its id only
    ]
    assert "## References" not in chat_markdown(messages[:1], {}.get)


def test_refuses_other_hosts_without_a_password(capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.cli import main

    assert main(["serve", "--host", "0.0.0.0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--auth" in err and err.startswith("assistant: error: refusing")
    assert main(["serve", "--host", "0.0.0.0", "--auth", "nopassword"]) == 1
    assert "USER:PASSWORD" in capsys.readouterr().err

    from assistant.web.server import check_exposure

    assert check_exposure("localhost", None, False) is None
    assert check_exposure("::1", None, False) is None
    assert check_exposure("0.0.0.0", "ann:pw:x", False) == ("ann", "pw:x")
    assert check_exposure("0.0.0.0", None, True) is None


def test_reply_streams_then_links_only_verified_citations(seed_store: Path, embed: MiniLMEmbedding) -> None:
    from assistant.web.ui import WebChat

    backend, llm = fake_backend(
        "How does AdaScale SGD scale?",  # the follow-up made stand-alone
        "AdaScale SGD reliably adapts learning rates to large-batch training [arXiv:2007.05105] "
        "[arXiv:9999.99999]. Re-tuning learning rates is resource intensive [arXiv:2007.05105].",
    )
    bot = Assistant(make_settings(seed_store), embed_model=embed, backend=backend)
    bot.judge = None  # no judge: the follow-up is condensed by the model (the judge's path reads it as asked)
    web = WebChat(bot)
    history = [
        {"role": "user", "content": [{"type": "text", "text": "What is AdaScale SGD?"}]},
        {
            "role": "assistant",
            "content": "It adapts \\[learning rates\\] [arXiv:2007.05105](https://arxiv.org/abs/2007.05105)",
        },
    ]
    steps = list(web.respond("How does it scale?", history, 3, "hybrid", "", "", "", ""))
    # Heartbeats repeat the view so far (a closed tab's stream can be closed between them): drop them.
    steps = [step for n, step in enumerate(steps) if step[0] and (n == 0 or step != steps[n - 1])]
    *streaming, (reply, panel) = steps
    assert len(streaming) == 2, "the reply arrives sentence by sentence"
    # Each sentence is shown once checked: its verified citation linked at once, the fabricated never.
    first, _ = streaming[0]
    assert "[arXiv:2007.05105](https://arxiv.org/abs/2007.05105)" in first and "intensive" not in first
    assert all("9999" not in markdown and "appear when it is done" in html for markdown, html in streaming)
    assert "[arXiv:2007.05105](https://arxiv.org/abs/2007.05105)" in reply and "9999.99999" not in reply
    assert "Removed citations" in panel and "arXiv:9999.99999" in panel
    # The earlier turns reached the condenser as plain text: no Markdown escapes or link targets.
    assert "It adapts [learning rates] [arXiv:2007.05105]\n" in llm.prompts[0]


# --- the real server in a real browser -------------------------------------------------------


@pytest.fixture(scope="module")
def ui_store(tmp_path_factory: pytest.TempPathFactory, embed: MiniLMEmbedding) -> Path:
    """The bundled abstracts plus one abstract full of HTML and script."""
    folder = tmp_path_factory.mktemp("ui")
    evil = folder / "evil.jsonl"
    record = {
        "id": EVIL_ID,
        "title": '<img src=x onerror="window.__pwned=5">Zebra transducers',
        "abstract": EVIL,
        "categories": "cs.CR",
        "update_date": "2024-01-05",
    }
    evil.write_text(json.dumps(record) + "\n")
    settings = make_settings(folder / "store")
    store = open_store(settings, for_writing=True)
    Ingester(store, embed, settings.chunking).ingest([bundled_corpus(), evil])
    return folder / "store"


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where `server` writes its output."""
    return tmp_path_factory.mktemp("serve") / "serve.log"


@pytest.fixture(scope="module")
def server(ui_store: Path, server_log: Path) -> Iterator[str]:
    """Run `assistant serve` on a free local port; yield its URL; stop it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = [
        sys.executable,
        "-m",
        "assistant",
        "serve",
        "--store",
        ui_store.name,
        "--port",
        str(port),
        "--mcp",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_"))}
    env |= {"ASSISTANT_LLM": "extractive", "PYTHONPATH": str(ROOT)}
    # From the store's folder: the page names the store as given, a short name for the picture.
    with running(argv, url, server_log, STARTUP_SECONDS, env=env, cwd=ui_store.parent):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (its own browser downloads do not work here)."""
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium: apt-get install -y chromium (make test does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    """A fresh tab on the chat page, with every request off this machine blocked and recorded."""
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    context.set_default_timeout(ANSWER_MS)
    outside: list[str] = []

    def local_only(route: Any) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    tab = context.new_page()
    tab.goto(server, wait_until="domcontentloaded")
    tab.locator("#question textarea").wait_for()
    yield tab
    context.close()
    assert not outside, f"the page reached outside this machine: {outside}"


def _ask(page: Any, question: str) -> Any:
    """Type a question, send it, and return the locator of the newest bot message once it is final."""
    before = page.locator("#chat .message-row.bot-row").count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    reply = page.locator("#chat .message-row.bot-row").nth(before)
    reply.wait_for()
    # The panel is filled when the verified answer arrives, after the last streamed piece.
    page.locator("#sources .aa-backend").wait_for()
    return reply


def _set_slider(page: Any, elem: str, value: int) -> None:
    """Type a number into a Gradio slider and wait until the slider itself holds it.

    The folded panel's controls mount a moment after it opens, and the typed number is committed
    on blur: a question sent before both happened would go out with the old value.
    """
    for _ in range(20):
        page.locator(f"{elem} input[type=number]").fill(str(value))
        page.locator(f"{elem} input[type=number]").press("Tab")
        if page.locator(f"{elem} input[type=range]").input_value() == str(value):
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the slider {elem} never took the value {value}")


@pytest.mark.slow
def test_browser_answer_cites_with_links_and_lists_sources(page: Any, tmp_path: Path) -> None:
    assert "extractive" in page.locator("#header").inner_text()
    page.get_by_text("Search settings").click()
    _set_slider(page, "#top_k", 3)

    reply = _ask(page, "What is AdaScale SGD?")
    link = reply.locator('a[href="https://arxiv.org/abs/2007.05105"]').first
    link.wait_for()
    assert link.inner_text() == "arXiv:2007.05105"
    cited = page.locator('#sources .aa-source[data-arxiv-id="2007.05105"]')
    assert "cited" in cited.inner_text()
    assert page.locator("#sources .aa-source").count() == 3, "the top-k control reaches retrieval"
    page.get_by_text("Search settings").click()  # folded again, for the picture
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot))
    if SCREENSHOT:
        shutil.copyfile(shot, ROOT / SCREENSHOT)

    follow_up = _ask(page, "How does it adapt the learning rate?")
    follow_up.locator('a[href="https://arxiv.org/abs/2007.05105"]').first.wait_for()

    page.locator("#clear").click()
    page.locator("#sources .aa-placeholder").wait_for()
    assert page.locator("#chat .message-row").count() == 0


@pytest.mark.slow
def test_browser_shows_an_overview_as_a_list_and_answers_its_follow_up(page: Any) -> None:
    # Issue 26: one cited line per paper, as a list; the next turn reads the papers from the page's history.
    reply = _ask(page, "What do the papers say about large language models?")
    items = reply.locator("li")
    items.nth(1).wait_for()
    assert items.count() >= 2
    for n in range(items.count()):
        assert items.nth(n).locator('a[href^="https://arxiv.org/abs/"]').count() == 1
    cited = {
        items.nth(n).locator("a").first.get_attribute("href").rsplit("/", 1)[-1] for n in range(items.count())
    }
    assert {"2305.14387", "2302.05733"} <= cited
    follow_up = _ask(page, "What did they find about malicious content?")
    follow_up.locator('a[href="https://arxiv.org/abs/2302.05733"]').first.wait_for()


@pytest.mark.slow
def test_browser_renders_html_in_abstracts_inert(page: Any) -> None:
    reply = _ask(page, EVIL_QUESTION)
    page.locator(f'#sources .aa-source[data-arxiv-id="{EVIL_ID}"]').wait_for()
    page.wait_for_timeout(500)  # time for an injected onerror handler to fire, if one got in
    assert page.evaluate("window.__pwned") is None
    assert "onerror=" in reply.inner_text(), "the reply quotes the markup as text"
    panel = page.locator("#sources").inner_text()
    for literal in (
        '<img src=x onerror="window.__pwned=1">',
        "<script>window.__pwned=2</script>",
        "${window",
    ):
        assert literal in panel
    for selector in ("#sources img", "#sources script", "#chat .message.bot img", "a[href^=javascript]"):
        assert page.locator(selector).count() == 0, selector


@pytest.mark.slow
def test_browser_bibtex_download_and_similar_papers(page: Any, server: str) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.rstrip("/"))
    page.locator("#bibtex").click()
    page.get_by_text("cites no paper: nothing to copy").wait_for()

    question = "How can NLP models be tested beyond held-out accuracy?"
    _ask(page, question)
    cited = page.locator("#sources .aa-is-cited").evaluate_all("els => els.map(e => e.dataset.arxivId)")
    assert "2005.04118" in cited
    page.locator("#bibtex").click()
    page.get_by_text(f"Copied the BibTeX of {len(cited)} cited paper").wait_for()
    copied = bibtexparser.parse_string(page.evaluate("navigator.clipboard.readText()"))
    assert not copied.failed_blocks
    assert [e.fields_dict["eprint"].value for e in copied.entries] == cited

    with page.expect_download() as saving:
        page.locator("#download").click()
    assert saving.value.suggested_filename == "arxiv-chat.md"
    chat = Path(saving.value.path()).read_text()
    assert chat.startswith(f"# Chat with the arXiv assistant\n\n**Question:** {question}\n")
    assert f"[arXiv:{cited[0]}](https://arxiv.org/abs/{cited[0]})" in chat.split("## References")[0]
    listed = chat.split("## References\n\n")[1].splitlines()
    assert [re.match(r"- \(\d{4}\)\. \[arXiv:([^\]]+)\]\(https://", line)[1] for line in listed] == cited  # type: ignore[index]

    page.locator('#sources .aa-source[data-arxiv-id="2005.04118"] .aa-similar').click()
    page.get_by_text("Papers like arXiv:2005.04118").wait_for()
    similar = page.locator("#similar .aa-source").evaluate_all("els => els.map(e => e.dataset.arxivId)")
    assert len(similar) == 5 and "2005.04118" not in similar, "the settings' 5 papers, itself left out"
    # The search settings narrow it: only the abstract full of markup is in cs.CR; it stays inert.
    page.get_by_text("Search settings").click()
    page.locator("#categories textarea").fill("cs.CR")
    page.locator("#similar .aa-source").first.locator(".aa-similar").click()
    page.locator(f'#similar .aa-source[data-arxiv-id="{EVIL_ID}"]').wait_for()
    assert page.locator("#similar .aa-source").count() == 1 and page.evaluate("window.__pwned") is None


@pytest.mark.slow
def test_page_serves_the_mcp_tools_without_a_login_on_this_machine(server: str) -> None:
    from tests.helpers.mcp import TOOL_NAMES, session

    tools, (result,) = session(server + "gradio_api/mcp/", [("get_paper", {"arxiv_id": EVIL_ID})], None)
    assert {t.name for t in tools} == TOOL_NAMES and not result.isError
    assert json.loads(result.content[0].text)["categories"] == ["cs.CR"]


@pytest.mark.slow
def test_gradio_client_chat_endpoint(server: str) -> None:
    from gradio_client import Client

    client = Client(server, verbose=False)
    result = client.predict(
        message="How much cheaper is simulated human feedback than crowdworkers?", api_name="/chat"
    )
    assert result["citations"][0] == "2305.14387" and result["backend"] == "extractive"
    assert "[arXiv:2305.14387]" in result["answer"]

    history = [
        {"role": "user", "content": result["question"]},
        {"role": "assistant", "content": result["answer"]},
    ]
    follow_up = client.predict(message="Which methods does it implement?", history=history, api_name="/chat")
    assert "2305.14387" in follow_up["citations"]

    assert len(result["references"]) == len(result["citations"])
    assert result["references"][0].startswith("@misc{arXiv:2305.14387,\n")

    filtered = client.predict(message=EVIL_QUESTION, categories="cs.CR", top_k=2, api_name="/chat")
    assert [p["arxiv_id"] for p in filtered["passages"]] == [EVIL_ID]
    nothing = client.predict(message=EVIL_QUESTION, since="2030-01-01", api_name="/chat")
    assert nothing["answer"] == NOT_FOUND and nothing["passages"] == []

    with pytest.raises(Exception, match="question is empty"):
        client.predict(message=" ", api_name="/chat")


# What a JSON client could send `/chat` (a lone surrogate is valid JSON: "\\udcff"), and the one line
# it must get back, the same as the CLI's and the Python API's.
HOSTILE_CALLS = [
    ({"top_k": -1}, "top_k -1 is not allowed: give a whole number from 1 to 100"),
    ({"top_k": 1_000_000}, "top_k 1000000 is not allowed: give a whole number from 1 to 100"),
    ({"top_k": 2.5}, "top_k 2.5 is not allowed"),
    ({"top_k": "5"}, "top_k '5' is not allowed"),
    ({"retriever": "sparse"}, "retriever 'sparse' is unknown: use one of dense, bm25, hybrid"),
    ({"since": "2024-13-01"}, "filter since='2024-13-01' is not a date; write YYYY-MM-DD"),
    ({"categories": 5}, "filter categories must be text, not int"),
    ({"author": "M\udcfcller"}, "filter author is not valid text: character 2 is an undecodable byte"),
    ({"message": "What is \udcff AdaScale?"}, "the question is not valid text: character 9"),
    ({"message": "x" * 2001}, "the question is 2,001 characters long; the limit is 2,000"),
    ({"history": "What is CheckList?"}, "history must be a list of earlier messages"),
]
CHAT_PARAMETERS = ("message", "history", "top_k", "retriever", "categories", "since", "until", "author")


def call_chat(server: str, **kwargs: Any) -> tuple[str, Any]:
    """POST to `/chat` as any JSON client can, bypassing gradio_client's checks; return (event, data)."""
    api = f"{server}gradio_api/call/chat"
    body = json.dumps({"data": [kwargs.get(name) for name in CHAT_PARAMETERS]}).encode()
    posted = urllib.request.Request(api, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(posted, timeout=60) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{api}/{event_id}", timeout=ANSWER_MS / 1000) as response:
        event, payload = response.read().decode().split("\n")[:2]
    return event.removeprefix("event: "), json.loads(payload.removeprefix("data: "))


@pytest.mark.slow
def test_chat_endpoint_answers_bad_values_in_one_line(server: str, server_log: Path) -> None:
    for call, message in HOSTILE_CALLS:
        event, data = call_chat(server, **{"message": "What is AdaScale SGD?", **call})
        assert event == "error" and str(data["error"]).startswith(message), (call, data)
        assert "\n" not in data["error"]
    event, data = call_chat(server, message="What is AdaScale SGD?", top_k=100.0)
    assert event == "complete" and data[0]["citations"][0] == "2007.05105"
    log = server_log.read_text()
    assert "Traceback" not in log and "Error" not in log, log[-3000:]
