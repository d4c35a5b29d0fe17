"""Shared fixtures: real data paths, the real embedding model, real Chroma stores in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.embeddings import MiniLMEmbedding, default_embedding
from assistant.ingest import Ingester, bundled_corpus
from assistant.pipeline import Assistant, open_store
from tests.helpers.settings import DATA, make_settings

pytest_plugins = ["tests.helpers.ci_skips"]  # under CI=true, a skip not allowed there fails the run


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real third-party arXiv data (../shared/data or $ARXIV_DATA)."""
    if not DATA.is_dir():
        pytest.skip(f"real arXiv data not found at {DATA}; set ARXIV_DATA")
    return DATA


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer setting leaks into a test."""
    for var in list(os.environ):
        if var.startswith("ASSISTANT_"):
            monkeypatch.delenv(var)


@pytest.fixture(scope="session")
def embed() -> MiniLMEmbedding:
    """The bundled embedding model, loaded once."""
    return default_embedding()


@pytest.fixture(scope="session")
def seed_store(tmp_path_factory: pytest.TempPathFactory, embed: MiniLMEmbedding) -> Path:
    """A store holding the bundled abstracts, built once per session; tests must not write to it."""
    path = tmp_path_factory.mktemp("seed") / "store"
    settings = make_settings(path)
    Ingester(open_store(settings, for_writing=True), embed, settings.chunking).ingest([bundled_corpus()])
    return path


@pytest.fixture(scope="session")
def seed_assistant(seed_store: Path, embed: MiniLMEmbedding) -> Assistant:
    """An assistant over the bundled abstracts."""
    return Assistant(make_settings(seed_store), embed_model=embed)
