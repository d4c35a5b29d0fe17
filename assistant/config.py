"""One typed `Settings` object: defaults < TOML profile < `ASSISTANT_*` env < flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from assistant.config_fields import Section, setting
from assistant.config_retrieval import MAX_TOP_K as MAX_TOP_K
from assistant.config_retrieval import RetrievalSettings
from assistant.config_sources import describe, flatten, put, read_toml, resolve_profile
from assistant.errors import ConfigError

CONFIG_ENV = "ASSISTANT_CONFIG"
# (answer tokens, passage tokens) by backend unless set: a local CPU model pays ~10 ms per prompt token
# before its first word (docs/models.md "Answering with a language model"); hosted models write syntheses.
LOCAL_BUDGET = (160, 200)
HOSTED_BUDGET = (400, 1500)
VERIFIERS = ("auto", "local", "answerer", "none")


class StoreSettings(Section):
    path: Path = setting(Path("index_store"), "folder of the persisted Chroma store", "ASSISTANT_STORE")
    collection: str = setting(
        "arxiv_abstracts", "Chroma collection holding the chunks", "ASSISTANT_COLLECTION"
    )
    mode: Literal["embedded", "server"] = setting(
        "embedded",
        "embedded (Chroma in this process, one process at a time) or server (`chroma run` over HTTP)",
        "ASSISTANT_STORE_MODE",
    )
    host: str = setting("127.0.0.1", "Chroma server host (server mode)", "ASSISTANT_STORE_HOST")
    port: int = setting(8000, "Chroma server port (server mode)", "ASSISTANT_STORE_PORT", ge=1, le=65535)


class EmbeddingSettings(Section):
    model: str = setting(
        "minilm",
        "what embeds the store and the questions: minilm (bundled), openai:MODEL, "
        "openai-compatible:MODEL@URL, ollama:MODEL or tei:URL; a store keeps the one it was built with",
        "ASSISTANT_EMBEDDING",
    )
    timeout: float = setting(
        60.0, "seconds a served embedding model may take to answer", "ASSISTANT_EMBED_TIMEOUT", gt=0
    )
    threads: int = setting(
        0, "onnxruntime threads for embedding; 0 = all cores", "ASSISTANT_EMBED_THREADS", ge=0
    )
    batch_tokens: int = setting(
        512, "padded word pieces per embedding forward pass", "ASSISTANT_EMBED_BATCH_TOKENS", ge=256
    )


class ChunkingSettings(Section):
    chunk_tokens: int = setting(
        254,
        "largest chunk in word pieces, title included (the model reads 256)",
        "ASSISTANT_CHUNK_TOKENS",
        ge=32,
        le=254,
    )
    overlap_tokens: int = setting(
        32, "word pieces shared by neighbouring chunks of one abstract", "ASSISTANT_CHUNK_OVERLAP", ge=0
    )
    include_title: bool = setting(
        True,
        "prefix each chunk with the paper's title (when known) before embedding",
        "ASSISTANT_CHUNK_TITLE",
    )


class AnswerSettings(Section):
    llm: str = setting(
        "auto",
        "which answerer writes the answer: auto, extractive, local, llamacpp:PATH, openai:MODEL, "
        "openai-compatible:MODEL@URL or ollama:MODEL",
        "ASSISTANT_LLM",
    )
    hosted: str = setting(
        "openai:gpt-4o-mini",
        "the hosted model `auto` prefers when it is usable (openai: needs a key); empty = none",
        "ASSISTANT_HOSTED_LLM",
    )
    api_key_file: str = setting(
        "",
        "file holding only the API key of the openai: or openai-compatible: model (chmod 600); "
        "its env var (OPENAI_API_KEY, OPENAI_COMPATIBLE_API_KEY) wins when set; empty = none",
        "ASSISTANT_API_KEY_FILE",
    )
    timeout: float = setting(
        30.0,
        "seconds a hosted model may take to connect or send the next piece before falling back",
        "ASSISTANT_LLM_TIMEOUT",
        gt=0,
    )
    max_tokens: int = setting(
        0,
        "longest generated answer, in tokens; 0 = by backend "
        f"({LOCAL_BUDGET[0]} local, {HOSTED_BUDGET[0]} hosted)",
        "ASSISTANT_LLM_MAX_TOKENS",
        ge=0,
        le=4096,
    )
    max_context_tokens: int = setting(
        0,
        "passage text sent to a generative model, in tokens (about 4 characters each); 0 = by backend "
        f"({LOCAL_BUDGET[1]} local, {HOSTED_BUDGET[1]} hosted)",
        "ASSISTANT_LLM_CONTEXT_TOKENS",
        ge=0,
        le=8000,
    )
    # Calibrated on bench/questions/answers-dev.jsonl (docs/checking.md "How an answer is checked").
    strong_margin: float = setting(
        0.13,
        "evidence is strong when a sentence is this far above the relevance threshold (cosine): then a local "
        "model's refusal is not accepted and it is asked again, constrained to answer",
        "ASSISTANT_STRONG_MARGIN",
        ge=0,
        le=2,
    )
    verifier: str = setting(
        "auto",
        "who judges that each answer sentence is entailed by the abstract it cites: auto (the hosted "
        "answerer when one answers, else the bundled local model), local, answerer (whatever --llm "
        "names), none (sentences are shown unchecked, and every answer says so)",
        "ASSISTANT_VERIFIER",
    )
    # Chosen on bench/questions/claims-dev.jsonl (docs/measured.md "Answers you can check").
    min_entailment: float = setting(
        0.7,
        "a sentence is shown only when the judge's probability that its cited abstract entails it is "
        "at least this",
        "ASSISTANT_MIN_ENTAILMENT",
        ge=0,
        le=1,
    )
    min_answerable: float = setting(
        0.5,
        "the model is asked only when the judge's probability that the best passages answer the "
        "question is at least this; below, the answer is the refusal",
        "ASSISTANT_MIN_ANSWERABLE",
        ge=0,
        le=1,
    )
    judge_sentences: int = setting(
        2,
        "sentences of the cited abstract the judge sees: those sharing most words with the sentence "
        "judged; 0 = the whole abstract",
        "ASSISTANT_JUDGE_SENTENCES",
        ge=0,
        le=50,
    )
    threads: int = setting(
        2, "CPU threads of an in-process llama.cpp model; 0 = its default", "ASSISTANT_LLM_THREADS", ge=0
    )
    ollama_base_url: str = setting(
        "http://127.0.0.1:11434", "where the Ollama server listens", "ASSISTANT_OLLAMA_URL"
    )
    max_sentences: int = setting(
        3, "sentences the extractive answerer quotes", "ASSISTANT_MAX_SENTENCES", ge=1, le=20
    )
    max_papers: int = setting(
        4,
        "papers an overview answer gives a line each (best first; a comparison gives its two)",
        "ASSISTANT_MAX_PAPERS",
        ge=1,
        le=20,
    )
    paper_lines: Literal["extractive", "model"] = setting(
        "extractive",
        "how an overview or comparison says what each paper contributes: extractive (the abstract's "
        "sentence closest to the question, past its background) or model (written by the answerer, "
        "judged, else the extractive sentence)",
        "ASSISTANT_PAPER_LINES",
    )
    max_question_chars: int = setting(
        2000, "longest question accepted", "ASSISTANT_MAX_QUESTION_CHARS", ge=10
    )

    @field_validator("verifier")
    @classmethod
    def _known_verifier(cls, value: str) -> str:
        if value not in VERIFIERS:
            raise ValueError(f"use one of: {', '.join(VERIFIERS)}")
        return value

    @field_validator("max_tokens", "max_context_tokens")
    @classmethod
    def _zero_or_enough(cls, value: int) -> int:
        if 0 < value < 16:
            raise ValueError("must be 0 (chosen by backend) or at least 16")
        return value

    def answer_tokens(self, *, local: bool) -> int:
        """Return the longest answer to generate: the setting, else the backend's default."""
        return self.max_tokens or (LOCAL_BUDGET if local else HOSTED_BUDGET)[0]

    def context_tokens(self, *, local: bool) -> int:
        """Return the passage budget: the setting, else the backend's default."""
        return self.max_context_tokens or (LOCAL_BUDGET if local else HOSTED_BUDGET)[1]


class ServeSettings(Section):
    concurrency: int = setting(
        8,
        "questions the web chat answers at once (page and /chat API together); the rest wait in line",
        "ASSISTANT_SERVE_CONCURRENCY",
        ge=1,
        le=64,
    )


class FetchSettings(Section):
    api_url: str = setting(
        "https://export.arxiv.org/api/query", "arXiv API query endpoint", "ASSISTANT_ARXIV_API_URL"
    )
    oai_url: str = setting("https://oaipmh.arxiv.org/oai", "arXiv OAI-PMH base URL", "ASSISTANT_OAI_URL")
    oai_format: Literal["arXivRaw", "arXiv", "oai_dc"] = setting(
        "arXivRaw", "OAI-PMH metadataPrefix to harvest", "ASSISTANT_OAI_FORMAT"
    )
    delay: float = setting(
        3.0, "seconds between requests (arXiv asks for at least 3)", "ASSISTANT_FETCH_DELAY", ge=0
    )
    retries: int = setting(
        4, "retries of a 503/429/5xx answer or a dropped connection", "ASSISTANT_FETCH_RETRIES", ge=0, le=20
    )
    backoff: float = setting(
        10.0, "first wait before a retry when the server names none; doubles", "ASSISTANT_FETCH_BACKOFF", ge=0
    )
    max_wait: float = setting(
        300.0, "longest single wait, even if Retry-After asks for more", "ASSISTANT_FETCH_MAX_WAIT", ge=0
    )
    timeout: float = setting(60.0, "seconds to wait for a server answer", "ASSISTANT_FETCH_TIMEOUT", gt=0)
    page_size: int = setting(100, "arXiv API results per request", "ASSISTANT_API_PAGE_SIZE", ge=1, le=2000)
    max_results: int = setting(
        1000, "arXiv API results fetched per query unless --max says", "ASSISTANT_API_MAX_RESULTS", ge=1
    )


class RaySettings(Section):
    workers: int = setting(
        0,
        "embedding workers of `assistant ingest --ray` (Ray actors, each loads the model once); "
        "0 = as many as the cluster's CPUs allow",
        "ASSISTANT_RAY_WORKERS",
        ge=0,
    )
    cpus_per_worker: int = setting(
        1,
        "CPUs Ray reserves for each embedding worker, and its onnxruntime threads",
        "ASSISTANT_RAY_CPUS_PER_WORKER",
        ge=1,
    )


class Settings(Section):
    """Every setting of the assistant, grouped as in `config/default.toml`."""

    store: StoreSettings = Field(default_factory=StoreSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    ray: RaySettings = Field(default_factory=RaySettings)

    @classmethod
    def load(
        cls,
        config: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from a profile (`config` or $ASSISTANT_CONFIG), the env and flag overrides.

        `overrides` maps dotted names (`"retrieval.top_k"`) to values; `None` values are skipped.
        """
        env = os.environ if env is None else env
        data: dict[str, Any] = {}
        origin: dict[str, str] = {}
        profile = config or env.get(CONFIG_ENV)
        if profile:
            path = resolve_profile(profile)
            for key, value in flatten(read_toml(path)).items():
                put(data, origin, key, value, str(path))
        for key, var in env_vars().items():
            if var in env:
                put(data, origin, key, env[var], f"${var}")
        for key, value in (overrides or {}).items():
            if value is not None:
                put(data, origin, key, value, "the command line")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(describe(exc, origin)) from None


def env_vars() -> dict[str, str]:
    """Map each dotted setting name to the env var that sets it."""
    out = {}
    for section, info in Settings.model_fields.items():
        model = info.default_factory  # type: ignore[misc]
        for name, field in model.model_fields.items():  # type: ignore[union-attr]
            out[f"{section}.{name}"] = field.json_schema_extra["env"]  # type: ignore[index]
    return out
