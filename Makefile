# Stratum — `make run` starts everything locally, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)
export PSYCOPG_WAIT_FUNC := wait_select

.PHONY: install run migrate rebuild test test-unit test-integration test-e2e test-faults bench bench-analysis bench-rebuild bench-scale bench-packing bench-capture catalogue clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m runtime.launch

migrate: install
	$(PY) -m runtime.migrate

rebuild: install
	$(PY) -m runtime.rebuild

test: install
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

test-integration: install
	$(PY) -m pytest tests/integration

test-e2e: install
	$(PY) -m pytest tests/e2e

test-faults: install
	$(PY) -m pytest -m faults -s tests/faults

catalogue: install
	$(PY) -m tools.catalogue_generate

# the write path (ARGS="--sqlite", "--gateways 2", "--requests 2000")
bench: install
	$(PY) -m bench.write_path $(ARGS)

bench-analysis: install
	$(PY) -m bench.analysis

bench-rebuild: install
	$(PY) -m bench.rebuild $(BENCH_REBUILD_ARGS)

# LISTs at 100,000 orders against raw SQL, and a rebuild from zero (ARGS="--orders 1000000" or ARGS=--sqlite)
bench-scale: install
	$(PY) -m bench.scale $(ARGS)

bench-packing: install
	$(PY) -m bench.packing

# sensor readings stored and queryable against a raw pika loop, and bytes per million readings (ARGS="--readings 1000000")
bench-capture: install
	$(PY) -m bench.capture $(ARGS)

clean:
	rm -rf var .pytest_cache
