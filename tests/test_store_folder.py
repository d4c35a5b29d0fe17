"""The store's folder holds only what the store wrote: its clean-up removes only its own names, and a
folder holding a user's files is refused before anything is written there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.embeddings import MODEL_ID
from assistant.errors import StoreError
from assistant.store import Store
from assistant.store.keyword.files import Files, Manifest
from harness.servers import free_port
from tests.helpers.cli import run
from tests.helpers.records import papers_file


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder` and the bytes of each file (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in folder.rglob("*")}


def users_folder(folder: Path) -> Path:
    """A folder of a user's own work: notes, and a folder whose name starts like the old index's."""
    (folder / "keyword-notes").mkdir(parents=True)
    (folder / "keyword-notes" / "ideas.md").write_text("keep me\n")
    (folder / "notes.txt").write_text("mine\n")
    return folder


def test_the_clean_up_removes_only_what_the_index_names(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "keyword" / "seg-0123456789ab").mkdir(parents=True)  # named by the new manifest: kept
    (store / "keyword" / "seg-ba9876543210").mkdir()  # a segment no manifest names any more
    (store / "keyword" / "seg-notes").mkdir()  # not a name the index gives
    # The index as it was before it had a folder: a pointer and the bm25s folder it names.
    (store / "keyword-3-77").mkdir()
    (store / "keyword-3-77" / "params.index.json").write_text("{}")
    (store / "keyword_index.json").write_text(json.dumps({"folder": "keyword-3-77", "generation": 3}))
    # What a user may keep beside a store that the old clean-up (every `keyword-*`) removed.
    users_folder(store)
    (store / "keyword-2024-01").mkdir()
    (store / "keyword-2024-01" / "params.index.json").write_text("{}")  # bm25s-shaped, but not named

    Files(store).save(Manifest("collection", 1, ("seg-0123456789ab",)), [])

    assert (store / "keyword-notes" / "ideas.md").read_text() == "keep me\n"
    assert (store / "notes.txt").exists() and (store / "keyword-2024-01" / "params.index.json").exists()
    assert not (store / "keyword-3-77").exists() and not (store / "keyword_index.json").exists()
    assert sorted(p.name for p in (store / "keyword").iterdir()) == [
        "manifest.json",
        "seg-0123456789ab",
        "seg-notes",
    ]


def test_a_pointer_naming_a_path_out_of_the_folder_removes_nothing(tmp_path: Path) -> None:
    outside = tmp_path / "keyword-1-2"
    outside.mkdir()
    (outside / "params.index.json").write_text("{}")
    store = tmp_path / "store"
    (store / "keyword").mkdir(parents=True)
    (store / "keyword_index.json").write_text(json.dumps({"folder": "../keyword-1-2"}))
    Files(store).save(Manifest("collection", 1, ()), [])
    assert (outside / "params.index.json").exists() and not (store / "keyword_index.json").exists()


@pytest.mark.slow  # CLI processes
def test_a_folder_holding_a_users_files_is_refused_untouched(tmp_path: Path) -> None:
    folder = users_folder(tmp_path / "work")
    before = snapshot(folder)
    papers = str(papers_file(tmp_path / "papers.jsonl", 2))
    said = f"assistant: error: {folder} holds files the store did not write (keyword-notes, notes.txt); "
    fix = "give --store a new or empty folder, or the folder of an existing store\n"
    server_mode = {"ASSISTANT_STORE_MODE": "server", "ASSISTANT_STORE_PORT": str(free_port())}
    for args, env in [
        (("ingest", papers), {}),
        (("ask", "What is AdaScale SGD?"), {}),
        # Server mode keeps only the keyword index here: any folder was accepted before.
        (("ingest", papers), server_mode),
    ]:
        out = run(*args, "--store", str(folder), env=env)
        assert (out.returncode, out.stdout, out.stderr) == (1, "", said + fix), args
        assert snapshot(folder) == before, args
    doctor = run("doctor", "--store", str(folder))
    assert doctor.returncode == 1
    assert f"PROBLEM  folder: {folder} holds files the store did not write" in doctor.stdout
    assert snapshot(folder) == before


def test_a_checkouts_store_folder_and_a_store_of_its_own_are_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "index_store"
    folder.mkdir()
    (folder / ".gitkeep").write_text("")
    (folder / "README.md").write_text("The default store.\n")
    Store(folder, "arxiv_abstracts", MODEL_ID, create=True)
    (folder / "oai_harvests.json").write_text("{}")
    (folder / "keyword").mkdir()
    again = Store(folder, "arxiv_abstracts", MODEL_ID, create=False)  # everything there is its own
    assert again.count() == 0
    (folder / "draft.txt").write_text("")
    with pytest.raises(StoreError, match=r"holds files the store did not write \(draft.txt\)"):
        Store(folder, "arxiv_abstracts", MODEL_ID, create=False)
