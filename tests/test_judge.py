"""The entailment judge with real models: the bundled one in-process, and over the OpenAI protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import Answer, Assistant
from assistant.config import AnswerSettings
from assistant.llms import resolve, resolve_judge
from assistant.llms.judge import HostedJudge, JudgeError, LocalJudge
from assistant.llms.llamacpp import bundled_model_path
from harness.servers import free_port
from tests.helpers.cli import run
from tests.helpers.fake_llm import fake_backend
from tests.helpers.llama_servers import llama_chat_server
from tests.helpers.settings import make_settings

ALPACA = "2305.14387"
ABSTRACT = (
    "We address these challenges with AlpacaFarm, a simulator that enables research and development for "
    "learning from feedback at a low cost. First, we design LLM prompts to simulate human feedback that "
    "are 45x cheaper than crowdworkers and display high agreement with humans."
)
TRUE = "AlpacaFarm's simulated feedback costs a forty-fifth of what crowdworkers cost."
FALSE = "AlpacaFarm's simulated feedback is more expensive than crowdworkers."

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_judge() -> LocalJudge:
    settings = AnswerSettings(llm="local", verifier="local")
    judge = resolve_judge(settings, resolve(settings))
    assert isinstance(judge, LocalJudge)
    return judge


def test_the_bundled_model_tells_a_true_sentence_from_a_false_one(local_judge: LocalJudge) -> None:
    true, false = local_judge.entailment(TRUE, ABSTRACT), local_judge.entailment(FALSE, ABSTRACT)
    assert true >= 0.7 > 0.3 >= false, (true, false)
    # The same prompt again reuses the cached prefix: no sampling, the same figure up to the numerics
    # of evaluating the prompt in other batches (0.936 vs 0.940 seen).
    assert local_judge.entailment(TRUE, ABSTRACT) == pytest.approx(true, abs=0.02)


def test_the_bundled_model_says_whether_passages_answer(local_judge: LocalJudge) -> None:
    yes = local_judge.answerable("How much cheaper is simulated feedback than crowdworkers?", ABSTRACT)
    no = local_judge.answerable("Which GPU did the AlpacaFarm authors train on?", ABSTRACT)
    assert yes >= 0.5 > no, (yes, no)


def test_a_hosted_judge_reads_the_servers_log_probabilities(tmp_path: Path) -> None:
    with llama_chat_server(bundled_model_path(), tmp_path / "server.log", n_ctx=2048, logprobs=True) as url:
        settings = AnswerSettings(llm=f"openai-compatible:qwen@{url}", verifier="auto")
        judge = resolve_judge(settings, resolve(settings, env={}))
        assert isinstance(judge, HostedJudge)
        true, false = judge.entailment(TRUE, ABSTRACT), judge.entailment(FALSE, ABSTRACT)
        assert judge._logprobs, "the server's log-probabilities were not read"
        assert 0.0 < false < 0.5 <= true < 1.0, (true, false)  # probabilities, not a yes/no reply


def test_a_judge_that_cannot_be_reached_shows_nothing_as_checked(seed_store: Path, embed) -> None:
    claim = f"Simulated feedback is 45x cheaper than crowdworkers [arXiv:{ALPACA}]."
    backend, _ = fake_backend(claim)
    bot = Assistant(make_settings(seed_store), embed_model=embed, backend=backend)
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings = AnswerSettings(llm=f"openai-compatible:judge@{dead}", timeout=5)
    remote = resolve(settings, env={})
    bot.judge = HostedJudge(remote.llm, remote.name, remote.describe_failure)
    result = bot.ask("How much cheaper is simulated human feedback than crowdworkers?")
    assert isinstance(result, Answer) and result.backend == "extractive" and result.verifier == "extractive"
    assert "answered with the extractive answerer instead" in result.warnings[0]
    assert all(s.entailment is None for s in result.sentences)
    with pytest.raises(JudgeError):
        bot.judge.entailment("x", "y")


def test_eval_claims_scores_the_gate_per_verifier(seed_store: Path, tmp_path: Path) -> None:
    claims = tmp_path / "claims.jsonl"
    rows = [
        {
            "question": "How much cheaper?",
            "claim": f"{TRUE} [arXiv:{ALPACA}]",
            "supported": True,
            "kind": "paraphrase",
        },
        {
            "question": "How much cheaper?",
            "claim": f"{FALSE} [arXiv:{ALPACA}]",
            "supported": False,
            "kind": "direction",
        },
        {
            "question": "How much cheaper?",
            "claim": f"It is 99x cheaper [arXiv:{ALPACA}]",
            "supported": False,
            "kind": "figure",
        },
    ]
    claims.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    args = ["--store", str(seed_store), "--llm", "local", "--verifier", "local,none", "--json"]
    out = run("eval", "--claims", str(claims), *args)
    assert out.returncode == 0, out.stderr
    assert f"{claims}:4: expected" in out.stderr  # the bad line is named, the rest is scored
    local, none = json.loads(out.stdout)
    assert local["verifier"].startswith("local:") and none["verifier"] == "none"
    assert local["claims"] == none["claims"] == 3
    assert local["false_claims_shown"] == 0.0 and local["true_claims_withheld"] == 0.0, local
    # Without a judge only the exact check stands: the invented figure is caught, the reversal shown.
    assert none["false_claims_shown"] == 0.5 and none["rows"][2]["exact"] == "its sources do not state 99"
    assert local["seconds_per_claim_median"] > 0 and set(local["sweep"]) >= {"0.5", "0.7"}
