"""Server mode for real: `chroma run` on a free loopback port, an ingest through it while a second
process queries, counts checked from both sides."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import ingest
from assistant.config import Settings
from assistant.embeddings import MODEL_ID, MiniLMEmbedding
from assistant.errors import StoreError
from assistant.ingest import Ingester
from assistant.pipeline import Assistant
from assistant.store import Store
from harness.servers import free_port, running
from tests.helpers.records import papers_file
from tests.helpers.settings import ROOT

CHROMA = Path(sys.executable).with_name("chroma")
PAPERS = 24


def server_settings(local: Path, port: int) -> Settings:
    """Settings for server mode on 127.0.0.1:`port`, the keyword index kept in `local`."""
    return Settings.load(overrides={"store.path": local, "store.mode": "server", "store.port": port}, env={})


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    """Start `chroma run` on a free loopback port and stop it afterwards; yield the port."""
    port = free_port()
    argv = [CHROMA, "run", "--path", tmp_path / "server-data", "--host", "127.0.0.1", "--port", port]
    heartbeat = f"http://127.0.0.1:{port}/api/v2/heartbeat"
    with running([str(a) for a in argv], heartbeat, tmp_path / "chroma.log", timeout=90):
        yield port


# The second process: opens the same server store, asks and counts until it sees every paper.
QUERIER = """
import sys, time
from pathlib import Path
from assistant.config import Settings
from assistant.embeddings import MODEL_ID, default_embedding
from assistant.errors import StoreError
from assistant.pipeline import Assistant
from assistant.store import Store
overrides = {"store.path": sys.argv[1], "store.mode": "server", "store.port": sys.argv[2]}
overrides["answer.llm"] = "extractive"
settings = Settings.load(overrides=overrides, env={})
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        store = Store.from_settings(settings.store, MODEL_ID, create=False)
        break
    except StoreError:
        time.sleep(0.2)  # the ingest has not created the collection yet
bot = Assistant(settings, store=store, embed_model=default_embedding())
while time.monotonic() < deadline:
    papers = store.paper_count()
    hits = bot.retrieve("neural networks", retriever="dense") if papers else []
    print(papers, len(hits), flush=True)
    if papers >= int(sys.argv[3]):
        break
    time.sleep(0.3)
"""


@pytest.mark.slow
def test_ingest_through_a_chroma_server_while_another_process_queries(
    chroma_server: int,
    tmp_path: Path,
    embed: MiniLMEmbedding,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest, "BATCH_PAPERS", 4)  # several writes, so the querier sees them land
    source = papers_file(tmp_path / "in.jsonl", PAPERS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    querier = subprocess.Popen(
        [sys.executable, "-c", QUERIER, str(tmp_path / "querier"), str(chroma_server), str(PAPERS)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        settings = server_settings(tmp_path / "ingester", chroma_server)
        store = Store.from_settings(settings.store, MODEL_ID, create=True)
        assert querier.stdout is not None
        first = querier.stdout.readline()  # the querier is up and asking (it gives up after 120 s)
        report = Ingester(store, embed, settings.chunking).ingest([source])
        out, _ = querier.communicate(timeout=150)
        out = first + out
    finally:
        if querier.poll() is None:
            querier.kill()
            querier.wait(timeout=10)
    assert querier.returncode == 0
    seen = [tuple(int(x) for x in line.split()) for line in out.splitlines()]
    assert report.added == PAPERS and store.paper_count() == PAPERS
    assert seen[0] == (0, 0) and seen[-1] == (
        PAPERS,
        5,
    )  # the querier saw every paper, and retrieval answered from them
    counts = [papers for papers, _ in seen]
    assert counts == sorted(counts) and len(set(counts)) > 2  # it saw the store grow, write by write
    # The keyword index lives beside the client, in store.path; the vectors only on the server.
    assert (tmp_path / "ingester" / "keyword" / "manifest.json").is_file()
    assert not (tmp_path / "ingester" / "chroma.sqlite3").exists()
    assert store.describe()["store"] == f"http://127.0.0.1:{chroma_server} (arxiv_abstracts)"


@pytest.mark.slow
def test_a_query_never_creates_or_seeds_a_server_collection(
    chroma_server: int, tmp_path: Path, embed: MiniLMEmbedding, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # store.path is the default ./index_store: no excuse to seed anything
    overrides = {"store.mode": "server", "store.port": chroma_server, "answer.llm": "extractive"}
    settings = Settings.load(overrides=overrides, env={})
    with pytest.raises(
        StoreError, match="has no collection 'arxiv_abstracts'; build it with `assistant ingest"
    ):
        Assistant(settings, embed_model=embed)
    with pytest.raises(StoreError, match="has no collection"):  # the failed query did not create it
        Store.from_settings(settings.store, MODEL_ID, create=False)
    # An empty collection (someone's ingest made it) is not filled with the bundled abstracts either.
    Store.from_settings(settings.store, MODEL_ID, create=True)
    bot = Assistant(settings, embed_model=embed)
    with pytest.raises(StoreError, match="is empty: add papers with `assistant ingest FILE` in server mode"):
        bot.ask("What is AdaScale SGD?")
    assert bot.store.count() == 0


def test_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "local", free_port())
    with pytest.raises(StoreError, match="cannot reach the Chroma server .* start it with `chroma run"):
        Store.from_settings(settings.store, MODEL_ID, create=True)


@pytest.mark.slow
def test_query_of_a_missing_collection_says_to_ingest(chroma_server: int, tmp_path: Path) -> None:
    settings = server_settings(tmp_path / "local", chroma_server)
    with pytest.raises(StoreError, match="has no collection 'arxiv_abstracts'"):
        Store.from_settings(settings.store, MODEL_ID, create=False)
