"""Output safety and secrets: hostile abstracts and servers cannot drive the terminal or the page,
API keys never reach the screen or a log, and the web chat stays on this machine unless guarded."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from assistant import Assistant
from assistant.embeddings import MiniLMEmbedding
from assistant.ingest import bundled_corpus
from assistant.web.render import reply_markdown
from harness.servers import free_port
from tests.helpers.cli import run
from tests.helpers.fake_app import FakeApp, launch_nothing
from tests.helpers.fake_llm import fake_backend
from tests.helpers.servers import Scripted, stub_server
from tests.helpers.settings import make_settings

HOSTILE_ID = "2401.66666"
QUESTION = "What do zebra transducers convert striped light into?"
# Each would act on a terminal: hyperlink (OSC 8), window title (OSC 0), clear screen and home
# (CSI), full reset (RIS), 8-bit CSI, DCS and OSC (C1), bell, backspace, carriage return.
HOSTILE = {
    "id": HOSTILE_ID,
    "title": "\x1b]8;;http://evil.example\x07Zebra\x1b]8;;\x07 transducers\x1b]0;pwned\x07",
    "abstract": (
        "Zebra transducers convert striped light into sound\x1b[2J\x1b[H at room temperature. "
        "Zebra transducers \x9b31mglow red\x9b0m and \x1bc reset striped light terminals. "
        "Zebra transducers\x07 hide \x90payloads\x9c and \x9d0;title\x9c in striped light\x08\x08\r."
    ),
    "categories": "cs.CR",
    "update_date": "2024-01-05",
}
# A record with a hostile id and no abstract: the ingest warning quotes the id.
BAD_RECORD = {"id": "\x1b]0;pwned\x07\x1b[2J2401.00001", "title": "no abstract"}
# ESC, C0 but tab and newline, DEL, C1: none may reach a terminal.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
KEY = "sk-test-SECRETabcdef0123456789XYZ"
COMPATIBLE_KEY = "sk-compat-SECRETabcdef0123456789"


def assert_inert(out: subprocess.CompletedProcess[str]) -> None:
    """No control character in stdout or stderr; the command succeeded."""
    for name, text in (("stdout", out.stdout), ("stderr", out.stderr)):
        found = sorted({f"U+{ord(c):04X}" for c in CONTROL.findall(text)})
        assert not found, f"{name} carries control characters {found}:\n{text!r}"
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`assistant ingest` of the bundled abstracts and the hostile records: the store and the run."""
    folder = tmp_path_factory.mktemp("hostile")
    source = folder / "hostile.jsonl"
    source.write_text(json.dumps(HOSTILE) + "\n" + json.dumps(BAD_RECORD) + "\n", encoding="utf-8")
    out = run("ingest", str(bundled_corpus()), str(source), "--store", str(folder / "store"))
    return folder / "store", out


@pytest.fixture(scope="module")
def store(ingested: tuple[Path, subprocess.CompletedProcess[str]]) -> Path:
    """The store holding the hostile abstract."""
    return ingested[0]


# --- a stand-in hosted model: scripted replies, failures, and a key echoed back ------------------


@pytest.fixture
def model_server() -> Iterator[ThreadingHTTPServer]:
    """A scripted OpenAI-compatible server on 127.0.0.1; set `.mode` and `.pieces`; `.url` is its /v1."""
    with stub_server(Scripted, mode="stream", pieces=[]) as server:
        yield server


# --- the terminal ---------------------------------------------------------------------------


@pytest.mark.slow
def test_ingest_warnings_are_inert(ingested: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, out = ingested
    assert_inert(out)
    assert "2401.00001: no 'abstract' text" in out.stderr  # the warning is there, defused
    assert out.stdout.startswith("added 11,") and "bad 1" in out.stdout


@pytest.mark.slow
def test_ask_prints_abstracts_and_titles_inert(store: Path) -> None:
    out = run("ask", QUESTION, "--store", str(store))
    assert_inert(out)
    assert f"[arXiv:{HOSTILE_ID}]" in out.stdout and "into sound[2J[H at room temperature" in out.stdout
    assert (
        f"arXiv:{HOSTILE_ID}" in out.stdout and "]8;;http://evil.exampleZebra]8;; transducers" in out.stdout
    )


@pytest.mark.slow
def test_ask_json_keeps_the_data_with_controls_escaped(store: Path) -> None:
    out = run("ask", QUESTION, "--store", str(store), "--json")
    assert_inert(out)
    data = json.loads(out.stdout)
    hostile = next(p for p in data["passages"] if p["arxiv_id"] == HOSTILE_ID)
    assert hostile["title"] == HOSTILE["title"]  # the exact data, escaped only in transit
    assert "\x1b[2J\x1b[H" in hostile["text"] and "\x9b31m" in hostile["text"]
    assert "\\u009b31m" in out.stdout and "\\u001b[2J" in out.stdout


@pytest.mark.slow
def test_streamed_reply_with_sequences_split_across_pieces_is_inert(
    store: Path, model_server: ThreadingHTTPServer
) -> None:
    model_server.pieces = [  # type: ignore[attr-defined]
        "Zebra transducers \x1b",
        "]8;;http://evil.example\x07click\x1b]8;;",
        "\x07 convert light \x9b",
        "31m into sound\x1b[",
        f"2J\x1b]0;pwned\x07 [arXiv:{HOSTILE_ID}] (arXiv:\x1bc\x9b31m).\x1bc",  # a fabricated, hostile id
    ]
    spec = f"openai-compatible:stub@{model_server.url}"  # type: ignore[attr-defined]
    out = run("ask", QUESTION, "--store", str(store), "--llm", spec)
    assert_inert(out)
    # Withheld (the OSC's "8" is a figure its source does not state), and shown inert as withheld.
    assert "]8;;http://evil.exampleclick]8;; convert light 31m into sound[2J]0;pwned" in out.stdout
    assert "(removed citations to papers that were not retrieved: c31m)" in out.stdout
    assert f"Sources ({spec} answer):" in out.stdout and not out.stderr.strip()

    out = run("ask", QUESTION, "--store", str(store), "--llm", spec, "--json")
    assert_inert(out)
    data = json.loads(out.stdout)
    withheld = data["unsupported"][0]
    assert withheld["text"].startswith("Zebra transducers \x1b]8;;http://evil.example\x07click")
    assert withheld["citations"] == [HOSTILE_ID] and data["dropped_citations"] == ["\x1bc\x9b31m"]


@pytest.mark.slow
def test_a_server_error_that_would_drive_the_terminal_is_inert(
    store: Path, model_server: ThreadingHTTPServer
) -> None:
    model_server.mode = "500"  # type: ignore[attr-defined]
    spec = f"openai-compatible:stub@{model_server.url}"  # type: ignore[attr-defined]
    out = run("ask", QUESTION, "--store", str(store), "--llm", spec)
    assert_inert(out)
    assert "upstream ]0;pwnedexploded[2J 31m" in out.stderr  # the reason, defused
    assert f"warning: {spec} failed (InternalServerError" in out.stdout


@pytest.mark.slow
def test_chat_and_eval_output_is_inert(store: Path, tmp_path: Path) -> None:
    out = run("chat", "--store", str(store), stdin=f"{QUESTION}\nWhat do they hide?\n\n")
    assert_inert(out)
    assert out.stdout.count("Sources (extractive answer):") == 2

    questions = tmp_path / "questions.jsonl"
    lines = [
        {
            "question": "What do zebra\x1b[2J transducers\x9b31m convert striped light into?",
            "expected_ids": [HOSTILE_ID],
        },
        "not json \x1b]0;pwned\x07",
    ]
    questions.write_text("\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n")
    out = run("eval", str(questions), "--store", str(store), "--json")
    assert_inert(out)
    assert "skipped" in out.stderr
    assert json.loads(out.stdout)["per_question"][0]["question"] == lines[0]["question"]  # type: ignore[index]


# --- the web chat: the model's reply is rendered as inert as the abstracts ------------------------


HOSTILE_REPLY = (
    # No digits in the payloads: a figure its sources do not state would withhold the sentence.
    '<img src=x onerror="window.__pwned=true"> <script>window.__pwned=true</script> '
    "[click](javascript:window.__pwned=true) ![pixel](https://evil.example/p.png) "
    "[home](https://evil.example) "
    "<https://evil.example/a> see https://evil.example/b or www.evil.example or mail me@evil.example "
    "**bold** `code` $x$ | table | It is 45x cheaper [arXiv:2305.14387] [arXiv:2305.14387](https://evil.example)."
)


def test_hostile_model_reply_renders_as_literal_text() -> None:
    verified = "[arXiv:2305.14387](https://arxiv.org/abs/2305.14387)"
    for link in (True, False):  # the verified answer, and the text as it streams
        markdown = reply_markdown(HOSTILE_REPLY, link=link)
        assert markdown.count(verified) == (2 if link else 0)
        rest = markdown.replace(verified, "")
        assert "<" not in rest and "](" not in rest and "**" not in rest and "`code`" not in rest
        # GFM would link bare URLs, www. and e-mail addresses: their `:`, `.` and `@` are escaped.
        for bare in ("https://", "www.", "me@", "evil.example"):
            assert bare not in rest


@pytest.fixture
def hostile_chat(seed_store: Path, embed: MiniLMEmbedding, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The web chat in this process, its model replying HOSTILE_REPLY word by word; yields its URL."""
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium: apt-get install -y chromium (make test does it)")
    pytest.importorskip("playwright.sync_api")
    from assistant.web.ui import build

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    backend, _ = fake_backend(HOSTILE_REPLY)
    # The rendering is under test, not the judge (which would withhold this reply): nobody judges.
    settings = make_settings(seed_store, **{"answer.verifier": "none"})
    app = build(Assistant(settings, embed_model=embed, backend=backend))
    port = free_port()
    app.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


# Records every link, image, script or frame that ever appears in the chat, also mid-stream.
WATCH = """() => {
  window.__seen = [];
  new MutationObserver((changes) => changes.forEach((change) => change.addedNodes.forEach((node) => {
    if (!node.querySelectorAll) return;
    for (const el of [node, ...node.querySelectorAll("a, img, script, iframe")])
      if (["A", "IMG", "SCRIPT", "IFRAME"].includes(el.tagName))
        window.__seen.push(`${el.tagName} ${el.getAttribute("href") || el.getAttribute("src") || ""}`);
  }))).observe(document.querySelector("#chat"), {subtree: true, childList: true});
}"""


@pytest.mark.slow
def test_browser_renders_a_hostile_model_reply_inert(hostile_chat: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(hostile_chat, wait_until="domcontentloaded")
            page.locator("#question textarea").wait_for()
            page.evaluate(WATCH)
            page.locator("#question textarea").fill(
                "How much cheaper is simulated human feedback than crowdworkers?"
            )
            page.locator("#question textarea").press("Enter")
            page.locator("#sources .aa-backend").wait_for()
            page.wait_for_timeout(500)  # time for an injected handler to fire, if one got in
            assert page.evaluate("window.__pwned") is None
            reply = page.locator("#chat .message-row.bot-row").last.inner_text()
            assert '<img src=x onerror="window.__pwned=true">' in reply and "https://evil.example/b" in reply
            seen = set(page.evaluate("window.__seen"))
            assert seen == {"A https://arxiv.org/abs/2305.14387"}, "the only link is the verified citation"
        finally:
            browser.close()


# --- secrets -----------------------------------------------------------------------------------


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert "SECRET" not in text, text


@pytest.mark.slow
def test_api_keys_are_never_printed(store: Path, model_server: ThreadingHTTPServer) -> None:
    """Keys reach the server (which echoes them in its error), never stdout, stderr or debug logs."""
    model_server.mode = "401"  # type: ignore[attr-defined]
    url = model_server.url  # type: ignore[attr-defined]
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_COMPATIBLE_API_KEY": COMPATIBLE_KEY,
        "OPENAI_API_BASE": url,  # where llama-index's OpenAI client sends `openai:` requests
        "OPENAI_LOG": "debug",  # the OpenAI SDK logs every request and response to stderr
    }
    runs = [
        run("stats", "--store", str(store), env=env),
        run("ask", QUESTION, "--store", str(store), "--llm", "openai:gpt-4o-mini", env=env),
        run("ask", QUESTION, "--store", str(store), "--json", env=env | {"ASSISTANT_LLM": "auto"}),
        run(
            "chat", "--store", str(store), "--llm", "openai:gpt-4o-mini", env=env, stdin=f"{QUESTION}\nWhy?\n"
        ),
    ]
    for out in runs:
        assert out.returncode == 0, out.stderr
        assert_no_key(out.stdout, out.stderr)
    assert_inert(runs[0])  # stats
    asked = runs[1:]
    assert all("AuthenticationError" in out.stderr for out in asked), "the key was sent and refused"
    assert "Request options" in runs[1].stderr, "the SDK's debug log was on"
    assert json.loads(runs[2].stdout)["warnings"][0].startswith("openai:gpt-4o-mini failed (")


@pytest.mark.slow
def test_api_keys_stay_out_of_python_logging(
    store: Path,
    model_server: ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from assistant.cli import main

    model_server.mode = "401"  # type: ignore[attr-defined]
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_BASE", model_server.url)  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)  # every library's debug records: openai, httpx, httpcore, ...
    assert main(["ask", QUESTION, "--store", str(store), "--llm", "openai:gpt-4o-mini", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "openai" in {r.name.split(".")[0] for r in caplog.records}, "debug logging was captured"
    assert_no_key(caplog.text, out, err, *(str(r.args) for r in caplog.records))


# --- the web chat stays on this machine unless a password guards it ---------------------------


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> type[FakeApp]:
    """Make `serve` build nothing and launch a recorder, so a broken rule fails instead of serving."""
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # must not widen what --host says
    monkeypatch.setenv("GRADIO_SHARE", "True")
    return launch_nothing(monkeypatch)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "[::]", "192.168.1.20", "10.0.0.1", "example.com", "localhost.evil.example",
     "127.0.0.1.nip.io", "LOCALHOST ", ""],
)  # fmt: skip
def test_serve_refuses_any_other_host_without_a_password(
    no_server: type[FakeApp], capsys: pytest.CaptureFixture[str], host: str
) -> None:
    from assistant.cli import main

    assert main(["serve", "--host", host]) == 1
    assert "refusing to serve" in capsys.readouterr().err and no_server.launched == {}


@pytest.mark.parametrize(
    ("argv", "host", "auth"),
    [
        ([], "127.0.0.1", None),
        (["--host", "localhost"], "localhost", None),
        (["--host", "::1"], "::1", None),
        (["--host", "127.0.0.2"], "127.0.0.2", None),
        (["--host", "0.0.0.0", "--auth", "ann:s3cret:pw"], "0.0.0.0", ("ann", "s3cret:pw")),
        (["--host", "0.0.0.0", "--insecure"], "0.0.0.0", None),
    ],
)
def test_serve_launches_only_where_asked_and_never_shares(
    no_server: type[FakeApp], capsys: pytest.CaptureFixture[str], argv: list[str], host: str, auth: Any
) -> None:
    from assistant.cli import main

    assert main(["serve", *argv]) == 0
    launched = no_server.launched
    assert (launched["server_name"], launched["share"], launched["auth"]) == (host, False, auth)
    assert "s3cret" not in capsys.readouterr().err
