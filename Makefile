# Everything from nothing: `make test` and `make quickstart` create the virtualenv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Most tests wait on the broker, the databases or a sink subprocess, not the CPU: four workers on
# two cores ran the suite in 7.5 minutes where two took 13.5 (2,146 tests, a quiet machine).
PYTEST_WORKERS ?= 4

.PHONY: install quickstart test fuzz lint services browser bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

quickstart: install
	$(BIN)/sink quickstart

services:
	bash .ci/services

# Debian's chromium + chromium-driver for the status page test (installed when missing; fails loudly).
browser:
	bash .ci/browser

lint: install
	$(BIN)/ruff check sink tests benchmarks
	$(BIN)/ruff format --check sink tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy

# Tests that stop a shared database run alone, after the parallel run.
test: install services browser lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q -p no:cacheprovider -m "not serial"
	$(BIN)/python -m pytest -q -p no:cacheprovider -m serial

# The long fuzz run: 10,000 Hypothesis payloads per format and database, every corpus case everywhere.
fuzz: install services
	SINK_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest tests/fuzz -n $(PYTEST_WORKERS) --dist loadgroup -q -p no:cacheprovider

bench: install services
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .quickstart build *.egg-info
