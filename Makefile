# Set-up and checks. `make run` starts the assistant on the bundled abstracts; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export ANONYMIZED_TELEMETRY := False

.PHONY: run install dev test lint format clean-store

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed-dev

run: install
	$(VENV)/bin/assistant chat

test: dev
	$(PY) -m pytest -q

lint: dev
	$(VENV)/bin/ruff check assistant tests
	$(VENV)/bin/ruff format --check assistant tests
	$(VENV)/bin/mypy assistant

format: dev
	$(VENV)/bin/ruff format assistant tests
	$(VENV)/bin/ruff check --fix assistant tests

clean-store:
	find index_store -mindepth 1 ! -name .gitkeep ! -name README.md -delete
