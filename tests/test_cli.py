"""The `assistant` command as users run it: a real process, real store, JSON contracts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.ingest import bundled_corpus
from tests.helpers.cli import run
from tests.helpers.records import paper_record, write_kaggle

ASK_KEYS = {"question", "answer", "citations", "passages", "backend"}


@pytest.mark.slow
def test_ask_json_contract(seed_store: Path) -> None:
    out = run("ask", "What is AdaScale SGD?", "--store", str(seed_store), "--json", "--top-k", "3")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data.keys() >= ASK_KEYS
    assert data["backend"] == "extractive"
    assert data["citations"][0] == "2007.05105"
    assert len(data["passages"]) == 3
    assert set(data["passages"][0]) >= {"arxiv_id", "title", "score", "text"}
    assert set(data["citations"]) <= {p["arxiv_id"] for p in data["passages"]}


@pytest.mark.slow
def test_ingest_summary_and_stats(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    first = run("ingest", str(bundled_corpus()), "--store", store)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "added 10, updated 0, unchanged 0, bad 0"
    again = run("ingest", str(bundled_corpus()), "--store", store, "--format", "seed")
    assert again.stdout.strip() == "added 0, updated 0, unchanged 10, bad 0"
    stats = json.loads(run("stats", "--store", store, "--json").stdout)
    assert stats["papers"] == 10 and stats["chunks"] >= 10
    assert stats["embedding_model"] == "all-MiniLM-L6-v2-onnx-int8"
    assert stats["store"] == store


@pytest.mark.slow
def test_env_store_and_text_output(seed_store: Path) -> None:
    out = run("ask", "Energy based view of GANs", env={"ASSISTANT_STORE": str(seed_store)})
    assert out.returncode == 0, out.stderr
    assert "[arXiv:1910.13101]" in out.stdout
    assert "https://arxiv.org/abs/1910.13101" in out.stdout


@pytest.mark.slow
def test_user_errors_are_one_line_without_traceback(tmp_path: Path, seed_store: Path) -> None:
    cases = [
        ("ask", "", "--store", str(seed_store)),
        ("ask", "x" * 100_000, "--store", str(seed_store)),
        ("ask", "anything", "--store", str(tmp_path / "missing")),
        ("stats", "--config", "no-such-profile"),
    ]
    for args in cases:
        out = run(*args, cwd=tmp_path)
        assert out.returncode == 1, args
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("assistant: error: "), out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_partial_failure_keeps_going(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"id": "2501.00001", "abstract": "Caf\xe9 au lait"}\n'.encode("latin-1"))
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "2501.00002", "abstract": "A fine abstract."}\n')
    out = run("ingest", str(latin1), str(tmp_path / "nope.jsonl"), str(good), "--store", str(tmp_path / "s"))
    assert out.returncode == 1
    assert out.stdout.strip() == "added 1, updated 0, unchanged 0, bad 1, unreadable files 1"
    assert f"{latin1}:1: not UTF-8 text" in out.stderr


@pytest.mark.slow
def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("assistant")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ingest" in out.stdout


@pytest.mark.slow
def test_undecodable_question_and_chat_input_are_one_line(seed_store: Path) -> None:
    # Bytes that are not UTF-8, as a shell passes them: argv and stdin get them raw.
    out = run("ask", os.fsdecode(b"What is \xff\xfe AdaScale?"), "--store", str(seed_store))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [
        "assistant: error: the question is not valid text: character 9 is an undecodable byte or a lone "
        "surrogate; send it as UTF-8"
    ]
    chat = run("chat", "--store", str(seed_store), stdin=b"What is \xff AdaScale?\nWhat is AdaScale SGD?\n")
    assert chat.returncode == 0 and "Traceback" not in chat.stderr
    assert "assistant: the question is not valid text: character 9" in chat.stderr
    assert "[arXiv:2007.05105]" in chat.stdout  # the conversation went on to the next question


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["ask", "q", "--top-k", "abc"],
            "argument --top-k: invalid int value: 'abc' (see `assistant ask --help`)",
        ),
        (["ask"], "the following arguments are required: QUESTION"),
        (["ask", "q", "--retriever", "sparse"], "argument --retriever: invalid choice: 'sparse'"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_a_malformed_command_line_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert (
        exited.value.code == 2 and err.startswith(f"assistant: error: {message}") and err.count("\n") == 1
    ), err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--top-k", "0"], "top_k 0 is not allowed: give a whole number from 1 to 100"),
        (["--top-k", "101"], "top_k 101 is not allowed"),
        (["--since", "2024-02-30"], "filter since='2024-02-30' is not a date; write YYYY-MM-DD"),
        (["--author", os.fsdecode(b"M\xfcller")], "filter author is not valid text: character 2"),
    ],
)
def test_bad_search_flags_are_one_line(
    seed_store: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["ask", "What is AdaScale SGD?", "--store", str(seed_store), *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"assistant: error: {message}") and err.count("\n") == 1, err


@pytest.mark.slow
def test_a_record_with_a_huge_title_is_ingested_and_stdout_is_the_summary(tmp_path: Path) -> None:
    # llama-index's splitter raised on the 400-word title and printed a warning about the 230-word one.
    records = [paper_record(n) for n in range(4)]
    records[1]["title"] = " ".join(["transformer"] * 400)
    records[2]["title"] = " ".join(["transformer"] * 230)
    source = write_kaggle(tmp_path / "odd.jsonl", records)
    out = run("ingest", str(source), "--store", str(tmp_path / "s"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout == "added 4, updated 0, unchanged 0, bad 0\n"
    asked = run(
        "ask", "transformer transformer", "--store", str(tmp_path / "s"), "--retriever", "bm25", "--json"
    )
    found = json.loads(asked.stdout)["passages"]
    assert {p["arxiv_id"] for p in found} >= {"2501.00001", "2501.00002"}
    assert max(len(p["title"]) for p in found) < len(records[1]["title"])  # the title was cut to fit
