"""The distributed ingest for real: `assistant ingest --ray` on Ray clusters on this machine (a local
instance, and a two-node cluster against a `chroma run` server), with kill -9 of the driver and of a
worker node mid-ingest followed by the same command again."""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.config import Settings
from assistant.embeddings import MODEL_ID, MiniLMEmbedding
from assistant.ingest import Ingester
from assistant.ingest.chunking import Chunker, embed_text
from assistant.pipeline import open_store
from assistant.schema import Paper
from assistant.sources import read_papers
from assistant.store import Store
from harness.servers import add_node, chroma, ray_cluster
from tests.helpers.cli import child_env, run
from tests.helpers.records import paper_record, papers_file, write_kaggle
from tests.helpers.settings import make_settings

pytest.importorskip("ray")  # `make dev` installs the extra; under CI=true a skip fails the run


def real_ray(test: Any) -> Any:
    """Mark a test that runs a real Ray instance or cluster (`make test-ray`; slow)."""
    return pytest.mark.slow(pytest.mark.ray(test))


PAPERS = 96
BATCH = 8  # small batches, so that a kill lands between writes and inside them
# `assistant ...` with small ingest batches.
COMMAND = """
import sys
import assistant.ingest as ingest
from assistant.cli import main
ingest.BATCH_PAPERS = int(sys.argv[1])
sys.exit(main(sys.argv[2:]))
"""


def source_file(path: Path) -> Path:
    """Write PAPERS made-up papers and one broken line after them (line PAPERS + 1)."""
    papers_file(path, PAPERS)
    with path.open("a", encoding="utf-8") as out:
        out.write('{"id": "2501.99999", "abstract": \n')
    return path


def expected_chunks(source: Path) -> set[str]:
    """Return the chunk ids a complete ingest of `source` stores."""
    chunker = Chunker(Settings.load(env={}).chunking)
    return {n.node_id for p in read_papers(source) if isinstance(p, Paper) for n in chunker.nodes(p)}


def assert_complete(store: Store, source: Path) -> None:
    """Exactly the expected chunks, each once and with its vector."""
    found = store._collection.get(include=["embeddings"])
    ids = found["ids"]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected_chunks(source)
    vectors = np.asarray(found["embeddings"], dtype=np.float32)
    assert vectors.shape == (len(ids), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)  # a real vector, not zeros
    assert store.paper_count() == PAPERS


def summary(stdout: str) -> dict[str, int]:
    """Parse `added A, updated U, unchanged N, bad B` into numbers."""
    lines = stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("added "), f"stdout is more than the summary: {stdout!r}"
    return {k: int(v) for k, v in (part.split() for part in lines[0].split(", ")[:4])}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A head node with no CPU for tasks and one worker node of 1 CPU, on this machine: every
    embedding worker runs on the worker node (so killing it kills them, whatever the timing)."""
    with ray_cluster(2, cpus=1, head_cpus=0) as running:
        yield running


@pytest.fixture(scope="module")
def chroma_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A `chroma run` server for the module; each test uses its own collection."""
    folder = tmp_path_factory.mktemp("chroma")
    with chroma(folder / "data", folder / "chroma.log") as port:
        yield port


def server_env(port: int, collection: str) -> dict[str, str]:
    """The environment of an ingest into `collection` on the `chroma run` at `port`."""
    return {
        "ASSISTANT_STORE_MODE": "server",
        "ASSISTANT_STORE_PORT": str(port),
        "ASSISTANT_COLLECTION": collection,
    }


def start(source: Path, local: Path, address: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start `assistant ingest SOURCE --store LOCAL --ray ADDRESS` in batches of BATCH papers."""
    argv = [sys.executable, "-c", COMMAND, str(BATCH), "ingest", str(source), "--store", str(local)]
    return subprocess.Popen(
        [*argv, "--ray", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env() | env,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    """Wait for an ingest; return its exit code, stdout and stderr."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    return proc.returncode, out, err


def server_store(port: int, local: Path, collection: str) -> Store:
    """Open the server collection as a reader."""
    overrides = {
        "store.path": local,
        "store.mode": "server",
        "store.port": port,
        "store.collection": collection,
    }
    return Store.from_settings(Settings.load(overrides=overrides, env={}).store, MODEL_ID, create=False)


def wait_for_papers(port: int, local: Path, collection: str, proc: subprocess.Popen[str], n: int) -> int:
    """Wait until the server holds at least `n` papers of the running ingest; return how many."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the ingest ended before it was killed: {proc.communicate()}"
        try:
            stored = server_store(port, local, collection).paper_count()
        except Exception:  # the collection is not made yet
            stored = 0
        if stored >= n:
            return stored
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} papers stored after 10 minutes")


@real_ray
def test_kill_9_of_the_driver_then_the_same_command_again(
    cluster: Any, chroma_port: int, tmp_path: Path
) -> None:
    source = source_file(tmp_path / "in.jsonl")
    local, env = tmp_path / "local", server_env(chroma_port, "driver_killed")
    proc = start(source, local, cluster.address, env)
    before = wait_for_papers(chroma_port, local, "driver_killed", proc, 2 * BATCH)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert before < PAPERS

    code, out, err = finish(start(source, local, cluster.address, env))
    assert code == 0, err
    counts = summary(out)
    assert counts["added"] + counts["unchanged"] == PAPERS and counts["updated"] == 0
    assert counts["unchanged"] >= before and counts["bad"] == 1  # what the killed run stored is kept
    assert f"{source}:{PAPERS + 1}: broken JSON" in err and "Traceback" not in err
    assert_complete(server_store(chroma_port, local, "driver_killed"), source)

    # Again: nothing left to embed, nothing duplicated.
    code, out, err = finish(start(source, local, cluster.address, env))
    assert (code, summary(out)) == (0, {"added": 0, "updated": 0, "unchanged": PAPERS, "bad": 1}), err


@real_ray
def test_kill_9_of_a_worker_node_then_the_same_command_again(
    cluster: Any, chroma_port: int, tmp_path: Path
) -> None:
    source = source_file(tmp_path / "in.jsonl")
    local, env = tmp_path / "local", server_env(chroma_port, "node_killed")
    (worker,) = cluster.worker_nodes
    proc = start(source, local, cluster.address, env)
    wait_for_papers(chroma_port, local, "node_killed", proc, BATCH)
    cluster.remove_node(worker, allow_graceful=False)  # SIGKILL to the node's raylet and its workers
    code, out, err = finish(proc)
    # The embedding worker is not restarted (ingest/ray.py: max_restarts=0, a restart would wait for
    # a CPU the cluster no longer has): its batch stops the run, in one line, and what was written
    # stays.
    assert code == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("assistant: error: the Ray pipeline failed ("), err
    assert err.strip().endswith("what was written is kept: run the same command again"), err
    assert BATCH <= server_store(chroma_port, local, "node_killed").paper_count() < PAPERS

    add_node(cluster, num_cpus=1)  # a node to run the embedding on again
    cluster.wait_for_nodes()

    code, out, err = finish(start(source, local, cluster.address, env))
    assert code == 0, err
    counts = summary(out)
    assert counts["added"] + counts["unchanged"] == PAPERS and counts["updated"] == 0
    assert_complete(server_store(chroma_port, local, "node_killed"), source)


def contents(settings: Settings) -> list[tuple[Any, ...]]:
    """Return every chunk of a store as (id, text, metadata but its write stamp, vector), by id."""
    found = open_store(settings, for_writing=False)._collection.get(
        include=["documents", "metadatas", "embeddings"]
    )
    rows = zip(found["ids"], found["documents"], found["metadatas"], found["embeddings"], strict=True)
    return sorted((i, d, {k: v for k, v in m.items() if k != "written"}, e) for i, d, m, e in rows)


@real_ray
def test_a_local_ray_ingest_stores_what_a_single_process_one_does(
    tmp_path: Path, embed: MiniLMEmbedding
) -> None:
    from assistant.ingest.ray import RayIngester

    records = [paper_record(n) for n in range(40)]
    records.insert(10, records[9] | {"title": "A repeat in the same batch: the later one wins"})
    source = write_kaggle(tmp_path / "in.jsonl", records)
    with source.open("a", encoding="utf-8") as out:
        out.write("not json\n")

    single = make_settings(tmp_path / "single")
    want = Ingester(open_store(single, for_writing=True), embed, single.chunking).ingest([source])
    settings = make_settings(tmp_path / "ray")
    warnings: list[str] = []
    with RayIngester(open_store(settings, for_writing=True), settings) as ray_run:
        got = ray_run.ingest([source], warn=warnings.append)
    assert got.summary() == want.summary() == "added 40, updated 0, unchanged 0, bad 1, repeated 1"
    assert warnings == [f"{source}:42: broken JSON (Expecting value at column 1)"]
    assert ray_run.shipped == 40

    ours, theirs = contents(settings), contents(single)
    assert [row[:3] for row in ours] == [row[:3] for row in theirs]  # ids, texts, metadata
    cosines = [float(np.dot(a[3], b[3])) for a, b in zip(ours, theirs, strict=True)]
    assert min(cosines) > 0.999  # the same model; only the worker's thread count differs

    # Hashes are checked before anything is shipped: unchanged papers never reach a worker.
    records[3] = records[3] | {"abstract": "A new abstract about sparse attention in long documents."}
    write_kaggle(source, records)
    with RayIngester(open_store(settings, for_writing=True), settings) as again:
        report = again.ingest([source])
    assert (report.summary(), again.shipped) == ("added 0, updated 1, unchanged 39, bad 0, repeated 1", 1)


@pytest.mark.slow  # CLI processes
def test_a_wrong_address_is_one_line_and_makes_no_store(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: nothing answers there
        out = run("ingest", str(papers_file(tmp_path / "in.jsonl", 2)), "--store", str(tmp_path / "s"),
                  "--ray", f"127.0.0.1:{port}")  # fmt: skip
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == (
        f"assistant: error: --ray 127.0.0.1:{port}: nothing answers at 127.0.0.1:{port} (Connection "
        f"refused); start the cluster's head there with `ray start --head --port {port}`, or give --ray "
        "alone for a local Ray"
    )
    assert not (tmp_path / "s").exists()
    bad = run("ingest", str(tmp_path / "in.jsonl"), "--store", str(tmp_path / "s"), "--ray", "nowhere")
    assert bad.returncode == 1 and "give auto, HOST:PORT or ray://HOST:PORT" in bad.stderr


def test_a_failing_worker_is_named_in_one_line() -> None:
    from assistant.errors import AssistantError
    from assistant.ingest.ray import worker_error

    inner = AssistantError("the embedding model package is missing: run `pip install ...`")
    outer = RuntimeError("ray.exceptions.RayTaskError(AssistantError): long trace\nmore")
    outer.__cause__ = inner
    assert str(worker_error(outer)) == f"a Ray worker failed: {inner}"
    assert str(worker_error(RuntimeError("node died\nObjectLostError: gone"))) == (
        "the Ray pipeline failed (ObjectLostError: gone); what was written is kept: "
        "run the same command again"
    )


def test_a_worker_chunks_and_embeds_as_this_process_would(tmp_path: Path, embed: MiniLMEmbedding) -> None:
    """The settings a worker is shipped (as JSON, the only way they reach it) make it chunk and embed
    exactly as a single-process ingest does, its onnxruntime held to its share of CPUs."""
    from assistant.ingest.ray import Embedder, worker_settings

    overrides = {"chunking.chunk_tokens": 48, "chunking.overlap_tokens": 8, "ray.cpus_per_worker": 2}
    settings = Settings.load(overrides=overrides, env={})
    assert worker_settings(settings).embedding.threads == 2  # not every core of the node
    pinned = settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"threads": 1})})
    assert worker_settings(pinned).embedding.threads == 1  # what the user set is kept

    papers = [
        p for p in read_papers(write_kaggle(tmp_path / "in.jsonl", [paper_record(0)])) if isinstance(p, Paper)
    ]
    worker = Embedder(worker_settings(settings).model_dump_json())
    out = worker({"seq": [7], "papers": [pickle.dumps(papers)]})
    assert out["seq"] == [7]
    shipped = pickle.loads(out["nodes"][0])
    here = Chunker(settings.chunking).nodes(papers[0])
    assert len(here) > 1, "the small chunks setting reached the worker: the abstract is split"
    assert [(n.node_id, n.text, n.metadata) for n in shipped] == [
        (n.node_id, n.text, n.metadata) for n in here
    ]
    vectors = embed.get_text_embedding_batch([embed_text(n) for n in here])
    assert np.allclose([n.get_embedding() for n in shipped], vectors, atol=1e-4)
