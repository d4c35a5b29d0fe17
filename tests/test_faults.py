"""Store faults, made for real: a read-only store, a full disk during ingest, damaged or half-written stores.

Each fault is a real kernel or file-system refusal (permissions or `chattr +i`, a read-only bind mount,
a small tmpfs, RLIMIT_FSIZE) or real damage to the files; the CLI runs as a real process, so exit codes,
the one-line messages and the absence of tracebacks are what a user sees. Mounts happen only inside a
private mount namespace (`unshare -m`), so nothing outside the test process tree ever sees them.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from assistant.config import ChunkingSettings
from assistant.doctor import diagnose, repair
from assistant.embeddings import MODEL_ID, MiniLMEmbedding
from assistant.ingest import Ingester, bundled_corpus
from assistant.pipeline import Assistant
from assistant.store import Store, writable
from harness.servers import free_port
from tests.helpers.cli import child_env, run
from tests.helpers.settings import make_settings

pytestmark = pytest.mark.slow

COLLECTION = "arxiv_abstracts"
NEW_PAPERS = 20


def one_error_line(out: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert the command failed with exactly one clean error line holding every needle; return it."""
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("assistant: error: "), out.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(path: Path) -> tuple[int, list[str]]:
    """Return (papers, sorted chunk ids) of a store, read in this process.

    Only once no other process will write the store any more: Chroma keeps per-process state.
    """
    store = Store(path, COLLECTION, MODEL_ID, create=False)
    ids = store._collection.get(include=[])["ids"]
    assert len(ids) == len(set(ids))  # never a duplicate
    return store.paper_count(), sorted(ids)


def counts(path: Path) -> tuple[int, int]:
    """Return (papers, chunks) as `assistant stats` reports them (another process: no shared state)."""
    out = run("stats", "--store", str(path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    return data["papers"], data["chunks"]


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory, embed: MiniLMEmbedding) -> Path:
    """The 10 bundled papers; Chroma told to write its HNSW files every 2 vectors (as a big store does)."""
    path = tmp_path_factory.mktemp("faults") / "store"
    store = Store(path, COLLECTION, MODEL_ID, create=True)
    store._collection.modify(configuration={"hnsw": {"sync_threshold": 2, "batch_size": 2}})
    Ingester(store, embed, ChunkingSettings()).ingest([bundled_corpus()])
    assert any(path.glob("*/index_metadata.pickle"))  # the vector index really is on disk
    return path


@pytest.fixture(scope="module")
def new_papers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Papers the small store lacks: Kaggle JSON lines with abstracts of a realistic length."""
    path = tmp_path_factory.mktemp("input") / "new.jsonl"
    words = ["retrieval", "augmented", "sparse", "attention", "kernels", "calibrated", "benchmarks"]
    with path.open("w", encoding="utf-8") as out:
        for i in range(NEW_PAPERS):
            text = " ".join(f"{words[(i + j) % len(words)]}{j % 7}" for j in range(160))
            record = {"id": f"2601.{i:05d}", "title": f"Paper {i}", "abstract": text, "categories": "cs.CL"}
            out.write(json.dumps(record) + "\n")
    return path


@pytest.fixture()
def store(small_store: Path, tmp_path: Path) -> Path:
    """A private copy of the small store."""
    return Path(shutil.copytree(small_store, tmp_path / "store"))


def expected_after_ingest(
    small_store: Path, new_papers: Path, tmp_path: Path, embed: MiniLMEmbedding
) -> list[str]:
    """The chunk ids of a store that ingested `new_papers` without any fault."""
    clean = Path(shutil.copytree(small_store, tmp_path / "clean"))
    Ingester(Store(clean, COLLECTION, MODEL_ID, create=False), embed, ChunkingSettings()).ingest([new_papers])
    return snapshot(clean)[1]


def assert_readable(path: Path, embed: MiniLMEmbedding, papers: int) -> None:
    """The store opens, holds `papers` papers, answers by dense and keyword search, and doctor is happy."""
    assert snapshot(path)[0] == papers
    bot = Assistant(make_settings(path), embed_model=embed)
    for kind in ("dense", "bm25"):
        assert bot.retrieve("What is AdaScale SGD?", retriever=kind)[0].arxiv_id == "2007.05105"
    report = diagnose(make_settings(path))
    assert report.healthy, report.text()


# --- mechanisms ------------------------------------------------------------------------------------


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def namespaces(tmp_path_factory: pytest.TempPathFactory) -> bool:
    """Whether this process may mount inside a private mount namespace (root, or CAP_SYS_ADMIN)."""
    probe = tmp_path_factory.mktemp("probe")
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)]
    return _works(["unshare", "-m", "--propagation", "private", *mount])


@contextmanager
def read_only(path: Path) -> Iterator[str]:
    """Make `path` and everything in it read-only for this user, for real; yield the mechanism's name.

    As root, permission bits stop nothing, so root uses the immutable attribute (`chattr +i`), which
    refuses writes to root too; it is always taken off again, or pytest could not clean up.
    """
    if os.geteuid() != 0:
        mechanism = "chmod -R a-w"
        subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
        undo = ["chmod", "-R", "u+w", str(path)]
    else:
        mechanism = "chattr -R +i"
        if not _works(["chattr", "-R", "+i", str(path)]):
            subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
            pytest.skip(f"running as root and chattr +i is not supported on {path}'s file system")
        undo = ["chattr", "-R", "-i", str(path)]
    try:
        if writable(path):
            pytest.skip(f"{mechanism} did not stop writes here")
        yield mechanism
    finally:
        subprocess.run(undo, check=True)


def read_only_mount(path: Path) -> tuple[str, ...]:
    """A command prefix that runs a command with `path` bind-mounted read-only over itself (EROFS)."""
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", script, str(path))


# --- read-only store -------------------------------------------------------------------------------


def test_ingest_into_read_only_store(
    store: Path, small_store: Path, new_papers: Path, embed: MiniLMEmbedding
) -> None:
    before = snapshot(small_store)  # `store` is a copy of it
    with read_only(store):
        line = one_error_line(run("ingest", str(new_papers), "--store", str(store)), "read-only", str(store))
        assert "--store DIR" in line
        # Chroma writes to its folder even to read, so reading fails too, as clearly.
        one_error_line(run("stats", "--store", str(store)), "read-only")
        out = run("doctor", "--store", str(store))
        assert out.returncode == 1 and "PROBLEM  writable" in out.stdout, out.stdout
    assert snapshot(store) == before
    assert_readable(store, embed, papers=10)


def test_ingest_into_read_only_mount(
    store: Path, small_store: Path, new_papers: Path, embed: MiniLMEmbedding, namespaces: bool
) -> None:
    if not namespaces:
        pytest.skip("needs a private mount namespace (unshare -m as root) for a read-only bind mount")
    before = snapshot(small_store)
    out = run("ingest", str(new_papers), "--store", str(store), prefix=read_only_mount(store))
    one_error_line(out, "read-only", "remount it read-write")
    assert snapshot(store) == before
    assert_readable(store, embed, papers=10)


# --- disk full -------------------------------------------------------------------------------------


def test_file_size_limit_during_ingest(
    store: Path, small_store: Path, new_papers: Path, tmp_path: Path, embed: MiniLMEmbedding
) -> None:
    """RLIMIT_FSIZE: the kernel refuses to grow any file past the limit (Python ignores SIGXFSZ)."""
    limit = (store / "chroma.sqlite3").stat().st_size + 64 * 1024

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    papers, ids = snapshot(small_store)  # `store` is a copy of it
    out = run("ingest", str(new_papers), "--store", str(store), preexec=small_files)
    one_error_line(out, "file size limit", "run the same command again")
    assert counts(store) == (papers, len(ids))  # the failed batch was rolled back whole; it reads
    again = run("ingest", str(new_papers), "--store", str(store))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"added {NEW_PAPERS}, updated 0, unchanged 0, bad 0"
    assert snapshot(store)[1] == expected_after_ingest(small_store, new_papers, tmp_path, embed)
    assert_readable(store, embed, papers=10 + NEW_PAPERS)


# Runs inside a private mount namespace: the store on a tmpfs too small for the new papers, then
# (the disk "cleaned up") the same tmpfs grown; the store is copied back out at the end.
TMPFS_HARNESS = """
import json, shutil, subprocess, sys
store, papers, out, size = sys.argv[1:5]
mnt = out + "/mnt"
subprocess.run(["mkdir", "-p", mnt], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], check=True)
shutil.copytree(store, mnt + "/store")
cli = [sys.executable, "-m", "assistant"]
steps = []
def step(*args):
    done = subprocess.run([*cli, *args, "--store", mnt + "/store"], capture_output=True, text=True)
    steps.append([done.returncode, done.stdout, done.stderr])
step("ingest", papers)
step("stats", "--json")
subprocess.run(["mount", "-o", "remount,size=200m", mnt], check=True)
step("stats", "--json")
step("ingest", papers)
shutil.copytree(mnt + "/store", out + "/after")
print(json.dumps(steps))
"""


def test_disk_full_during_ingest(
    store: Path, small_store: Path, new_papers: Path, tmp_path: Path, embed: MiniLMEmbedding, namespaces: bool
) -> None:
    """A tmpfs with room for the store but not for the new papers: ENOSPC, as on a full disk."""
    if not namespaces:
        pytest.skip("needs a private mount namespace (unshare -m as root) for a small tmpfs")
    used = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    size = (used // 4096 + 64) * 4096  # the store, 256 KiB to spare; the new papers need more
    env = child_env()
    harness = ["unshare", "-m", "--propagation", "private", sys.executable, "-c", TMPFS_HARNESS]
    done = subprocess.run(
        [*harness, str(store), str(new_papers), str(tmp_path), str(size)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (full_ingest, full_stats, freed_stats, rerun) = [
        subprocess.CompletedProcess([], rc, stdout, stderr) for rc, stdout, stderr in json.loads(done.stdout)
    ]
    one_error_line(full_ingest, "no space left", "run the same command again")
    # While the disk is full, Chroma may be unable even to read (it writes to read): then one clean line.
    if full_stats.returncode:
        one_error_line(full_stats, "no space left")
    else:
        assert json.loads(full_stats.stdout)["papers"] in (10, 10 + NEW_PAPERS)
    assert freed_stats.returncode == 0, freed_stats.stderr
    assert rerun.returncode == 0, rerun.stderr
    assert snapshot(tmp_path / "after")[1] == expected_after_ingest(small_store, new_papers, tmp_path, embed)
    assert_readable(tmp_path / "after", embed, papers=10 + NEW_PAPERS)


# A child that runs the CLI, but once the keyword index is built (the papers are stored by then) no
# file may grow any more: the real EFBIG lands exactly on the keyword index save.
KEYWORD_CHILD = """
import resource, sys
from assistant import cli
from assistant.store.keyword import segments
build = segments.build_pages
def build_then_no_room(pages, **kwargs):
    bm25 = build(pages, **kwargs)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
    return bm25
segments.build_pages = build_then_no_room
sys.exit(cli.main(sys.argv[1:]))
"""


def test_no_room_for_the_keyword_index(store: Path, new_papers: Path, embed: MiniLMEmbedding) -> None:
    env = child_env()
    out = subprocess.run(
        [sys.executable, "-c", KEYWORD_CHILD, "ingest", str(new_papers), "--store", str(store)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    line = one_error_line(out, "cannot save the keyword index", "--fix")
    assert "the papers are stored" in line
    assert len(list(store.glob("keyword/seg-*"))) == 1  # the half-written segment was removed
    assert counts(store)[0] == 10 + NEW_PAPERS
    checks = json.loads(run("doctor", "--store", str(store), "--json").stdout)["checks"]
    assert [c["check"] for c in checks if not c["ok"]] == ["keyword index"]
    fixed = run("doctor", "--store", str(store), "--fix")
    assert fixed.returncode == 0, fixed.stdout
    assert "fixed    rebuilt the keyword index" in fixed.stdout
    assert_readable(store, embed, papers=10 + NEW_PAPERS)


# --- damaged and half-written stores ---------------------------------------------------------------


def _segment(path: Path) -> Path:
    return next(p for p in path.iterdir() if (p / "header.bin").exists())


DAMAGE: dict[str, tuple[Callable[[Path], object], tuple[str, ...], str, str]] = {
    # name: (damage, the ordinary command, what its one line says, the doctor check that fails)
    "truncated database": (
        lambda p: os.truncate(p / "chroma.sqlite3", (p / "chroma.sqlite3").stat().st_size // 2),
        ("stats",),
        "the store is damaged (database disk image is malformed)",
        "database",
    ),
    "garbage database": (
        lambda p: (p / "chroma.sqlite3").write_bytes(os.urandom((p / "chroma.sqlite3").stat().st_size)),
        ("stats",),
        "the store is damaged (file is not a database)",
        "database",
    ),
    "deleted database": (
        lambda p: (p / "chroma.sqlite3").unlink(),
        ("ask", "What is AdaScale SGD?"),
        "chroma.sqlite3 is missing",
        "database",
    ),
    "garbage vector index header": (
        lambda p: (_segment(p) / "header.bin").write_bytes(os.urandom(100)),
        ("stats",),
        "the store is damaged (Error creating hnsw segment reader",
        "opens",
    ),
    "deleted vector index": (
        lambda p: shutil.rmtree(_segment(p)),
        ("ask", "What is AdaScale SGD?", "--retriever", "dense"),
        "the vector index found 1 of the",
        "vectors",
    ),
    "truncated vector data": (
        lambda p: os.truncate(_segment(p) / "data_level0.bin", 1000),
        ("ask", "What is AdaScale SGD?"),
        "the store is damaged (Error finding id)",
        "vectors",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_store_one_line_and_doctor(store: Path, damage: str) -> None:
    corrupt, command, says, check = DAMAGE[damage]
    corrupt(store)
    line = one_error_line(run(*command, "--store", str(store)), says)
    assert f"assistant doctor --store {store}" in line
    out = run("doctor", "--store", str(store))
    assert out.returncode == 1, out.stdout
    problems = [line for line in out.stdout.splitlines() if line.startswith("  PROBLEM")]
    assert problems and problems[0].startswith(f"  PROBLEM  {check}:"), out.stdout
    assert f"re-ingest: `assistant ingest SOURCE --store {store}`" in out.stdout
    assert out.stdout.rstrip().endswith("1 problem found")


def test_serve_on_a_damaged_store_is_one_line(store: Path) -> None:
    os.truncate(store / "chroma.sqlite3", 4096)
    one_error_line(
        run("serve", "--store", str(store), "--port", str(free_port())),
        "the store is damaged",
        "assistant doctor",
    )


def test_store_of_another_embedding_model(tmp_path: Path) -> None:
    Store(tmp_path / "other", COLLECTION, "some-other-model", create=True)
    one_error_line(run("stats", "--store", str(tmp_path / "other")), "some-other-model", "new --store folder")
    out = run("doctor", "--store", str(tmp_path / "other"), "--json")
    assert out.returncode == 1
    failed = [c for c in json.loads(out.stdout)["checks"] if not c["ok"]]
    assert [c["check"] for c in failed] == ["embedding model"]
    assert "some-other-model" in failed[0]["detail"] and "NEW_DIR" in failed[0]["fix"]


@pytest.mark.parametrize("damage", ["deleted manifest", "truncated matrix", "garbage manifest"])
def test_damaged_keyword_index_heals_and_doctor_fixes_it(
    store: Path, damage: str, embed: MiniLMEmbedding
) -> None:
    if damage == "deleted manifest":
        (store / "keyword" / "manifest.json").unlink()
    elif damage == "truncated matrix":
        os.truncate(next(store.glob("keyword/seg-*/data.csc.index.npy")), 100)
    else:
        (store / "keyword" / "manifest.json").write_text('{"segments": 3}')
    checks = json.loads(run("doctor", "--store", str(store), "--json").stdout)["checks"]
    assert [(c["check"], c["fixable"]) for c in checks if not c["ok"]] == [("keyword index", True)]
    out = run("doctor", "--store", str(store), "--fix", "--json")
    assert out.returncode == 0, out.stdout
    data = json.loads(out.stdout)
    assert data["healthy"] and data["repaired"] == ["rebuilt the keyword index over 14 chunks"]
    assert_readable(store, embed, papers=10)


# What an ingest killed inside a paper's write leaves: chunk 1 stored, chunk 0 (the commit mark) not.
HALF_CHILD = """
import sys
from llama_index.core.schema import TextNode
from assistant.embeddings import MODEL_ID
from assistant.store import Store
half = TextNode(
    id_="2601.99999#1",
    text="The second half of an abstract whose first chunk was never written.",
    metadata={"arxiv_id": "2601.99999", "chunk": 1, "n_chunks": 2},
    embedding=[0.05] * 384,
)
Store(sys.argv[1], "arxiv_abstracts", MODEL_ID, create=False).upsert([half])
"""


def test_half_written_ingest(store: Path, small_store: Path, embed: MiniLMEmbedding) -> None:
    """What a kill between Chroma writes leaves: a paper without its chunk 0, a stale keyword index."""
    before = snapshot(small_store)
    subprocess.run([sys.executable, "-c", HALF_CHILD, str(store)], check=True, env=child_env(), timeout=300)
    out = run("doctor", "--store", str(store))
    assert out.returncode == 1
    assert (
        "PROBLEM  papers: 1 of 11 papers are half-written (an ingest stopped mid-way): 2601.99999"
        in out.stdout
    )
    assert "PROBLEM  keyword index: built at store generation" in out.stdout
    assert out.stdout.rstrip().endswith("2 problems found")
    report = diagnose(make_settings(store))
    assert repair(make_settings(store), report)[0].startswith("removed 1 half-written papers (2601.99999)")
    assert snapshot(store) == before
    assert_readable(store, embed, papers=10)


def test_healthy_store_and_missing_folder(small_store: Path, tmp_path: Path) -> None:
    out = run("doctor", "--store", str(small_store))
    assert out.returncode == 0, out.stdout
    assert out.stdout.rstrip().endswith("healthy") and "PROBLEM" not in out.stdout
    missing = run("doctor", "--store", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert f"PROBLEM  folder: {tmp_path / 'nowhere'} does not exist" in missing.stdout
