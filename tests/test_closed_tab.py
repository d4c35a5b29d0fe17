"""Closing the browser tab while the local model streams must not hang the chat for anyone."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.servers import free_port, running
from tests.helpers.settings import ROOT
from tests.test_ui import CHROMIUM, CHROMIUM_ARGS

STARTUP_SECONDS = 300  # the bundled 1.5B model loads and warms up on 2 shared cores
NEXT_ANSWER_SECONDS = 30  # the bound for the next question after the tabs were closed
TABS = 4
# The bundled model answers this in three sentences over ~30 s: the tabs close after the first.
BROAD = "What do the papers say about learning from human feedback?"
QUESTION = "How much cheaper is AlpacaFarm's simulated feedback than crowdworkers?"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_server(seed_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`assistant serve --llm local` (the bundled model) over the bundled abstracts: its URL and log."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    argv = [sys.executable, "-m", "assistant", "serve", "--store", str(seed_store), "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "GRADIO_"))}
    env |= {"ASSISTANT_LLM": "local", "PYTHONPATH": str(ROOT)}
    with running(argv, url, log, STARTUP_SECONDS, env=env):
        yield url, log


def _start_question(browser: Any, url: str) -> tuple[Any, Any]:
    """Open a tab and ask BROAD; return the tab's context and the locator of its reply."""
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(url, wait_until="domcontentloaded")
    tab.locator("#question textarea").fill(BROAD)
    tab.locator("#question textarea").press("Enter")
    return context, tab.locator("#chat .message-row.bot-row").first


def test_closing_tabs_mid_answer_leaves_the_model_free(local_server: tuple[str, Path]) -> None:
    url, log = local_server
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium: apt-get install -y chromium (make test does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    from gradio_client import Client

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # Four visitors ask at once; the model streams the first answer while the rest wait.
            tabs = [_start_question(browser, url) for _ in range(TABS)]
            # Closed once the first answer's first checked sentence shows, with more to come.
            tabs[0][1].get_by_text("arXiv:", exact=False).first.wait_for(timeout=120_000)
            for context, _ in tabs:
                context.close()
        finally:
            browser.close()
    client = Client(url, verbose=False)
    job = client.submit(message=QUESTION, api_name="/chat")
    began = time.monotonic()
    while not job.done() and time.monotonic() - began < NEXT_ANSWER_SECONDS:
        time.sleep(0.5)
    assert job.done(), f"no answer {NEXT_ANSWER_SECONDS} s after the tabs were closed: the model is stuck"
    result = job.result()
    assert result["citations"] == ["2305.14387"], result
    # A lock released by a thread that does not own it stays held: the next visitor may hang.
    assert "un-acquired lock" not in log.read_text(), log.read_text()[-3000:]
