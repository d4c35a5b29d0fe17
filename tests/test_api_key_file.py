"""answer.api_key_file: a hosted model's key read from a file, never from a profile, never printed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from assistant.cli import main
from assistant.config import AnswerSettings, Settings
from assistant.errors import ConfigError, LLMError
from assistant.keys import COMPATIBLE_KEY_ENV
from assistant.llms import resolve
from harness.servers import FakeOpenAI, fake_openai
from tests.helpers.cli import run
from tests.helpers.servers import Scripted, stub_server

pytest.importorskip("llama_index.llms.openai_like", reason="pip install -e '.[hosted]'")

KEY = "sk-file-SECRETabcdef0123456789XYZ"
ENV_KEY = "sk-env-SECRETzyx9876543210"
# Not shaped like an OpenAI key, so only Backend(secret=...) keeps it out of messages, no pattern.
PLAIN_KEY = "tgp_v1_SECRETabcdef0123456789"
QUESTION = "How much cheaper is simulated human feedback than crowdworkers?"
NOWHERE = "http://127.0.0.1:9/v1"  # nothing is sent there: these tests fail before any request
PROMPT = [ChatMessage(role=MessageRole.USER, content="[arXiv:2305.14387] ...\nQuestion: Is it cheaper?\n")]


def key_file(folder: Path, text: str = KEY + "\n", mode: int = 0o600) -> Path:
    """Write `text` to `folder/key` with permissions `mode`; return the path."""
    path = folder / "key"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert "SECRET" not in text, text


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    """The fake OpenAI-compatible server, recording each request's Authorization header in `.seen`."""
    with fake_openai(delay=0.0) as server:
        seen: list[str] = []

        class Recording(server.RequestHandlerClass):  # type: ignore[name-defined,misc]
            def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
                seen.append(self.headers.get("Authorization", ""))
                super().do_POST()

        server.RequestHandlerClass = Recording
        server.seen = seen  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def echoing() -> Iterator[ThreadingHTTPServer]:
    """tests/test_safety.py's server in its worst mode: a 401 whose message quotes the key it got."""
    seen: list[str] = []

    class Recording(Scripted):
        def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
            seen.append(self.headers.get("Authorization", ""))
            super().do_POST()

    with stub_server(Recording, mode="401", pieces=[], seen=seen) as server:
        yield server


def compatible(server: ThreadingHTTPServer | str, path: Path | str) -> AnswerSettings:
    """Settings for `openai-compatible:m@` the server (or a URL), its key in the file `path`."""
    url = server if isinstance(server, str) else server.url  # type: ignore[attr-defined]
    return AnswerSettings(llm=f"openai-compatible:m@{url}", api_key_file=str(path))


def ask_model(settings: AnswerSettings, env: dict[str, str]) -> str:
    return "".join(resolve(settings, env=env).stream(PROMPT))


# --- the setting ------------------------------------------------------------------------------


def test_the_setting_comes_from_toml_and_env(tmp_path: Path) -> None:
    assert Settings.load(env={}).answer.api_key_file == ""
    profile = tmp_path / "p.toml"
    profile.write_text('[answer]\napi_key_file = "~/.config/arxiv-assistant/key"\n')
    assert Settings.load(profile, env={}).answer.api_key_file == "~/.config/arxiv-assistant/key"
    env = {"ASSISTANT_API_KEY_FILE": "/run/secrets/key"}
    assert Settings.load(profile, env=env).answer.api_key_file == "/run/secrets/key"


@pytest.mark.parametrize(
    "toml",
    [
        '[answer]\napi_key = "{v}"\n',
        '[answer]\nopenai_api_key = "{v}"\n',
        '[answer]\nkey = "{v}"\n',
        '[store]\nauth_token = "{v}"\n',
        'api_key = "{v}"\n',
        '[answer]\nllm = "openai:gpt-4o-mini"\nAPI_KEY = "{v}"\ntop_k = 3\n',
    ],
)
def test_a_profile_holding_the_key_is_refused_without_echoing_it(tmp_path: Path, toml: str) -> None:
    profile = tmp_path / "leaky.toml"
    profile.write_text(toml.format(v=KEY))
    with pytest.raises(ConfigError) as info:
        Settings.load(profile, env={})
    message = str(info.value)
    assert_no_key(message, repr(info.value))
    assert "leaky.toml" in message and "api_key_file" in message and "OPENAI_API_KEY" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no traceback quoting it


def test_other_unknown_names_keep_the_usual_message(tmp_path: Path) -> None:
    profile = tmp_path / "typo.toml"
    profile.write_text("[retrieval]\nkeyword_weight = 0.5\n")
    with pytest.raises(ConfigError, match=r"typo.toml: unknown setting 'retrieval.keyword_weight'; see"):
        Settings.load(profile, env={})


@pytest.mark.slow
def test_the_command_line_refuses_such_a_profile_in_one_line(tmp_path: Path) -> None:
    profile = tmp_path / "leaky.toml"
    profile.write_text(f'[answer]\napi_key = "{KEY}"\n')
    out = run("ask", QUESTION, "--store", str(tmp_path / "store"), "--config", str(profile))
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "'answer.api_key' would keep an API key in a profile" in out.stderr
    assert_no_key(out.stdout, out.stderr)


# --- where the key comes from -----------------------------------------------------------------


def test_the_key_in_the_file_reaches_the_server(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # `~` expands to it
    key_file(tmp_path, f"\n  {KEY}  \n")
    reply = ask_model(compatible(fake, "~/key"), env={})
    assert "[arXiv:2305.14387]" in reply
    assert fake.seen == [f"Bearer {KEY}"]  # type: ignore[attr-defined]


def test_openai_reads_the_file_too_and_auto_counts_it_as_usable(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("llama_index.llms.openai", reason="pip install -e '.[hosted]'")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_BASE", fake.url)  # where llama-index's OpenAI client sends requests
    path = key_file(tmp_path)
    settings = AnswerSettings(llm="auto", hosted="openai:gpt-4o-mini", api_key_file=str(path))
    backend = resolve(settings, env={})
    assert (backend.name, backend.hosted) == ("openai:gpt-4o-mini", True)
    assert KEY not in repr(backend)
    assert "[arXiv:2305.14387]" in "".join(backend.stream(PROMPT))
    assert fake.seen == [f"Bearer {KEY}"]  # type: ignore[attr-defined]
    without = resolve(settings.model_copy(update={"api_key_file": ""}), env={})
    assert without.name != "openai:gpt-4o-mini"


def test_the_env_var_wins_over_the_file(fake: FakeOpenAI, tmp_path: Path) -> None:
    settings = compatible(fake, key_file(tmp_path))
    ask_model(settings, env={COMPATIBLE_KEY_ENV: ENV_KEY})
    # With the env var set the file is not even read: a missing one is no error.
    ask_model(compatible(fake, tmp_path / "missing"), env={COMPATIBLE_KEY_ENV: ENV_KEY})
    ask_model(settings, env={COMPATIBLE_KEY_ENV: "  "})  # blank counts as unset
    assert fake.seen == [f"Bearer {ENV_KEY}"] * 2 + [f"Bearer {KEY}"]  # type: ignore[attr-defined]


def test_ollama_and_extractive_ignore_the_file(tmp_path: Path) -> None:
    pytest.importorskip("llama_index.llms.ollama", reason="pip install -e '.[hosted]'")
    missing = str(tmp_path / "missing")
    assert resolve(AnswerSettings(llm="ollama:m", api_key_file=missing), env={}).name == "ollama:m"
    assert resolve(AnswerSettings(llm="extractive", api_key_file=missing), env={}).extractive


# --- a file that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "No such file or directory"),
        ("folder", "Is a directory"),
        (" \n\n", "is empty"),
        (f"{KEY}\nsk-other-SECRET0000000000", "holds more than the key"),
        (f"OPENAI_API_KEY = {KEY}", "holds more than the key"),
        (f"{KEY}\x1b[2J", "holds more than the key"),
        (KEY.encode() + b"\xff\xfe", "is not UTF-8 text"),
    ],
)
def test_an_unusable_file_is_one_clear_line_without_the_key(
    tmp_path: Path, content: str | bytes | None, reason: str
) -> None:
    path = tmp_path / "key"
    if content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    for llm in ("openai:gpt-4o-mini", f"openai-compatible:m@{NOWHERE}"):
        with pytest.raises(LLMError) as info:
            resolve(AnswerSettings(llm=llm, api_key_file=str(path)), env={})
        message = str(info.value)
        assert_no_key(message)
        assert "\n" not in message and reason in message, message
        assert (
            "answer.api_key_file ($ASSISTANT_API_KEY_FILE): " in message
            and message.count(repr(str(path))) == 1
        )
        assert "put only the key in it" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    path = key_file(tmp_path, mode=0)
    with pytest.raises(LLMError, match="cannot read the API key file .* \\(Permission denied\\)"):
        resolve(compatible(NOWHERE, path), env={})


def test_the_key_given_as_the_path_is_masked(tmp_path: Path) -> None:
    with pytest.raises(LLMError) as info:
        resolve(compatible(NOWHERE, KEY), env={})
    assert "No such file" in str(info.value) and "sk-fil***" in str(info.value)
    assert_no_key(str(info.value))


def test_a_missing_file_on_the_command_line_is_one_line(
    seed_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASSISTANT_API_KEY_FILE", str(tmp_path / "nope"))
    argv = ["ask", "--store", str(seed_store), "--llm", f"openai-compatible:m@{NOWHERE}", "hi"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and not out
    assert f"cannot read the API key file {str(tmp_path / 'nope')!r} (No such file or directory)" in err


# --- permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_a_file_others_can_read_is_used_with_one_warning(
    fake: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    path = key_file(tmp_path, mode=mode)
    settings = compatible(fake, path)
    for _ in range(3):
        ask_model(settings, env={})
    assert fake.seen == [f"Bearer {KEY}"] * 3  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.count("chmod 600") == 1, err
    assert f"permissions {mode:04o} for the API key file {str(path)!r} are too open" in err
    assert err.rstrip().endswith(f"run chmod 600 {str(path)!r}")
    assert_no_key(err)


@pytest.mark.parametrize("mode", [0o400, 0o600, 0o700])
def test_a_private_file_gives_no_warning(
    fake: FakeOpenAI, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    path = key_file(tmp_path, mode=mode)
    ask_model(compatible(fake, path), env={})
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert capsys.readouterr().err == ""


# --- a real `assistant` process ---------------------------------------------------------------


@pytest.mark.slow
def test_the_command_sends_the_file_key_and_never_prints_it(
    seed_store: Path, tmp_path: Path, fake: FakeOpenAI
) -> None:
    path = key_file(tmp_path)
    profile = tmp_path / "profile.toml"
    profile.write_text(f"[answer]\napi_key_file = {str(path)!r}\n")
    spec = f"openai-compatible:m@{fake.url}"
    env = {"OPENAI_LOG": "debug"}  # the OpenAI SDK logs every request and response to stderr
    out = run("ask", QUESTION, "--store", str(seed_store), "--config", str(profile), "--llm", spec, env=env)
    assert out.returncode == 0, out.stderr
    assert f"Sources ({spec} answer):" in out.stdout and "Request options" in out.stderr
    assert fake.seen and set(fake.seen) == {f"Bearer {KEY}"}  # type: ignore[attr-defined]
    assert "chmod" not in out.stderr
    assert_no_key(out.stdout, out.stderr)


@pytest.mark.slow
def test_a_server_that_echoes_the_key_cannot_get_it_printed(
    seed_store: Path, tmp_path: Path, echoing: ThreadingHTTPServer
) -> None:
    path = key_file(tmp_path, PLAIN_KEY, mode=0o644)
    spec = f"openai-compatible:m@{echoing.url}"  # type: ignore[attr-defined]
    env = {"ASSISTANT_API_KEY_FILE": str(path), "OPENAI_LOG": "debug"}
    runs = [
        run("ask", QUESTION, "--store", str(seed_store), "--llm", spec, "--json", env=env),
        run("chat", "--store", str(seed_store), "--llm", spec, env=env, stdin=f"{QUESTION}\nWhy?\n"),
        run("stats", "--store", str(seed_store), env=env),
    ]
    for out in runs:
        assert out.returncode == 0, out.stderr
        assert_no_key(out.stdout, out.stderr)
    for out in runs[:2]:
        assert "AuthenticationError" in out.stderr, "the key was sent and refused"
        assert out.stderr.count("chmod 600") == 1, out.stderr  # once per process, not per question
    assert set(echoing.seen) == {f"Bearer {PLAIN_KEY}"} and len(echoing.seen) >= 3  # type: ignore[attr-defined]
