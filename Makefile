# CRM Cockpit — the two commands a new user needs: `make demo` and `make test`.
# Both create .venv and install the pinned packages first (skipped when already up to date).

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SIZE ?= medium
SEED ?= 42
PORT ?= 8501

.PHONY: install demo serve refresh status test lint typecheck pytest benchmark constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the pins change.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install ## generate demo sources, refresh them through the quality gate, serve on 127.0.0.1:$(PORT)
	$(BIN)/cockpit demo --size $(SIZE) --seed $(SEED) --port $(PORT)

serve: install
	$(BIN)/cockpit serve --port $(PORT)

refresh: install
	$(BIN)/cockpit refresh

status: install
	$(BIN)/cockpit status

lint: install
	$(BIN)/ruff check dashboard tests benchmarks

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest

test: lint typecheck pytest ## the whole suite, as CI runs it

benchmark: install ## refresh at medium and large against the DuckDB floor; writes docs/benchmarks.md
	$(BIN)/python benchmarks/refresh.py --sizes medium large

constraints: install ## re-pin every resolved package after changing pyproject.toml
	{ head -2 constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^#'; } > constraints.tmp
	mv constraints.tmp constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
