"""The embedding registry against real servers on 127.0.0.1 (llama-cpp-python's OpenAI-compatible
server on SmolLM2, a text-embeddings-inference stand-in), and the fast ONNX form's fallback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.cli import main
from assistant.config import Settings
from assistant.embeddings import (
    GEMMA_ID,
    MODEL_ID,
    MiniLMEmbedding,
    fast_form,
    gemma,
    model_path,
    resolve,
    spec_of,
    store_id,
)
from assistant.errors import EmbeddingError
from assistant.ingest import bundled_corpus
from assistant.pipeline import Assistant
from assistant.schema import Paper
from assistant.sources import read_papers
from tests.helpers.llama_servers import llama_embedding_server, tei_server
from tests.helpers.settings import make_settings

QUESTION = "How much cheaper is simulated human feedback than crowdworkers?"
RIGHT = "2305.14387"
SHA = "ef" * 32  # a cache key of its own, so these builds never touch the real cache's file


def one_line(err: str) -> str:
    """Return the single line a user error prints, failing if there is more (a traceback)."""
    assert err.count("\n") == 1, err
    return err


def test_specs_and_what_stores_record() -> None:
    assert store_id("minilm") == MODEL_ID and spec_of(MODEL_ID) == "minilm"
    # What a Gemma store records is the id its module names (it is imported only when used).
    assert store_id("embeddinggemma") == GEMMA_ID == gemma.MODEL_ID
    assert spec_of("embeddinggemma-300m-int8") == "embeddinggemma"
    assert store_id(" tei:http://127.0.0.1:8080 ") == "tei:http://127.0.0.1:8080"
    assert spec_of("ollama:nomic-embed-text") == "ollama:nomic-embed-text"
    for bad in ("", "MiniLM2", "openai:", "openai-compatible:m", "tei:127.0.0.1:8080", "ollama://h"):
        with pytest.raises(
            EmbeddingError, match="use one of: minilm, embeddinggemma, openai:MODEL, openai-compatible"
        ):
            store_id(bad)
    settings = Settings.load(env={"ASSISTANT_EMBEDDING": "ollama:nomic-embed-text"})
    assert resolve(settings).store_id == "ollama:nomic-embed-text"
    openai = Settings.load(env={"ASSISTANT_EMBEDDING": "openai:text-embedding-3-small"})
    with pytest.raises(EmbeddingError, match="needs an API key: set OPENAI_API_KEY"):
        resolve(openai, env={})


def test_bad_embedding_and_rerank_settings_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    assert main(["ask", QUESTION, "--store", store, "--embedding", "bogus", "--llm", "extractive"]) == 1
    assert "unknown embedding 'bogus'" in one_line(capsys.readouterr().err)
    assert main(["stats", "--store", store, "--embedding", "tei:nowhere"]) == 1
    assert "unknown embedding 'tei:nowhere'" in one_line(capsys.readouterr().err)
    assert main(["ask", QUESTION, "--store", store, "--rerank", "cohere", "--llm", "extractive"]) == 1
    err = one_line(capsys.readouterr().err)
    assert "setting 'retrieval.rerank'" in err and "none, sentences, llm, tei:" in err
    assert main(["ask", QUESTION, "--store", store, "--rerank", "llm", "--llm", "extractive"]) == 1
    assert "needs a generative answerer" in one_line(capsys.readouterr().err)
    assert not Path(store).exists()  # nothing was created for a command that could not run


def three_papers(folder: Path) -> Path:
    """Write three of the bundled abstracts as Kaggle JSON lines (SmolLM2 embeds ~100 tokens/s here)."""
    wanted = {RIGHT, "2005.04118", "2007.05105"}
    found = [p for p in read_papers(bundled_corpus()) if isinstance(p, Paper) and p.arxiv_id in wanted]
    path = folder / "three.jsonl"
    path.write_text("".join(json.dumps({"id": p.arxiv_id, "abstract": p.abstract}) + "\n" for p in found))
    return path


@pytest.mark.slow  # llama-cpp-python's server in a process of its own
def test_openai_compatible_embeddings_from_llama_cpp_server(
    tmp_path: Path,
    embed: MiniLMEmbedding,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("ASSISTANT_EMBED_TIMEOUT", "600")  # a 135M model on 2 shared cores
    with llama_embedding_server(tmp_path / "server.log") as url:
        spec = f"openai-compatible:smollm2@{url}"
        assert main(["ingest", str(three_papers(tmp_path)), "--store", str(store), "--embedding", spec]) == 0
        assert "added 3" in capsys.readouterr().out
        settings = make_settings(store, **{"embedding.model": spec, "embedding.timeout": 600})
        bot = Assistant(settings, sentence_model=embed)
        assert bot.store.describe()["embedding_model"] == spec
        # The answer stage still scores sentences with the bundled MiniLM, not the served model.
        assert bot.sentence_model is embed and bot.embed_model is not embed
        vector = np.asarray(bot.embed_model.get_query_embedding("sparse attention"))
        assert (
            vector.shape == (576,) and abs(np.linalg.norm(vector) - 1) < 1e-4
        )  # SmolLM2's width, unit length
        # A stored chunk asked verbatim finds its own paper: vectors went in under the right ids.
        chunk = bot.store.get_chunks([f"{RIGHT}#0"])[f"{RIGHT}#0"]["document"]
        assert bot.retrieve(chunk, retriever="dense")[0].arxiv_id == RIGHT
        assert bot.ask(QUESTION).passages
        # The openai: client, through the same server (a local base URL and a key that is not real).
        env = {"OPENAI_API_KEY": "sk-test-not-a-real-key", "OPENAI_API_BASE": url}
        openai = resolve(make_settings(store, **{"embedding.model": "openai:smollm2"}), env=env)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OPENAI_API_BASE", url)
            assert len(openai.build().get_text_embedding_batch(["a", "b"])) == 2
    # The default embedding may not open (or extend) this store: one line naming the right spec.
    assert main(["stats", "--store", str(store)]) == 1
    assert f"open it with --embedding {spec}" in one_line(capsys.readouterr().err)
    # The server is gone: one line, no traceback, nothing stored changes.
    assert main(["ask", QUESTION, "--store", str(store), "--embedding", spec, "--llm", "extractive"]) == 1
    err = one_line(capsys.readouterr().err)
    assert f"embedding with {spec} failed" in err and f"the embedding server at {url}" in err


def test_tei_embeddings_and_reranking(
    tmp_path: Path, embed: MiniLMEmbedding, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    with tei_server(embed) as tei:
        spec = f"tei:{tei.url}"
        assert main(["ingest", str(bundled_corpus()), "--store", str(store), "--embedding", spec]) == 0
        capsys.readouterr()
        settings = make_settings(
            store, **{"embedding.model": spec, "retrieval.rerank": spec, "retrieval.top_k": 3}
        )
        bot = Assistant(settings, sentence_model=embed)
        result = bot.ask(QUESTION)
        assert result.citations[:1] == [RIGHT]  # MiniLM behind the protocol: a real ranking
        assert len(result.passages) == 3 and len(tei.reranked[-1]) == 10  # all 10 papers re-scored
        scores = [p.metadata["rerank_score"] for p in result.passages]
        assert scores == sorted(scores, reverse=True)
        # The reranker fails: the fused order is kept, with one warning line, and the answer stands.
        tei.fail = {"/rerank"}
        again = bot.ask(QUESTION)
        err = capsys.readouterr().err
        assert "reranking with tei:" in one_line(err) and "kept the retrieval order" in err
        assert again.citations[:1] == [RIGHT] and "rerank_score" not in again.passages[0].metadata
        # The embedding server fails: there is nothing to search with, so the question fails in one line.
        tei.fail = {"/embed"}
        with pytest.raises(EmbeddingError, match=f"embedding with {spec} failed"):
            bot.ask(QUESTION)


# --- the fast ONNX form: any failure to build or check it falls back to the packaged file ---


def test_a_damaged_model_falls_back_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    damaged = tmp_path / "model.onnx"
    damaged.write_bytes(model_path().read_bytes()[:100_000])  # cut short: onnx.load fails to decode it
    assert fast_form(damaged, SHA, tmp_path / "cache") == damaged
    err = one_line(capsys.readouterr().err)
    assert err.startswith("assistant: warning: using the slower packaged embedding model form")


def test_an_unwritable_cache_falls_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    assert fast_form(model_path(), SHA, blocked) == model_path()
    assert "(FileExistsError" in one_line(capsys.readouterr().err)


def test_without_onnx_the_packaged_form_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
        assert fast_form(model_path(), SHA, tmp_path) == model_path()
    assert "(ModuleNotFoundError" in one_line(capsys.readouterr().err)


def test_a_graph_the_rewrite_cannot_handle_falls_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A valid model whose graph is not the one the rewrite expects: it raises ValueError, which
    # the fallback once let through (only OSError and ImportError were caught).
    import onnx

    source = tmp_path / "other.onnx"
    model = onnx.load(str(model_path()))
    model.graph.input[0].name = "renamed_input"
    onnx.save(model, str(source))
    assert fast_form(source, SHA, tmp_path / "cache") == source
    assert "(ValueError: " in one_line(capsys.readouterr().err)
    assert not list((tmp_path / "cache").glob("*.onnx*"))  # no half-written file left behind
