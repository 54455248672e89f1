# Bascule: `make demo` to see it work, `make test` to run lint and every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: demo test lint format unit integration system bench bench-failover bench-checks bench-vip clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "cannot create a venv: on Debian run 'apt-get install python3-venv'"; exit 1; }
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/bascule demo

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(VENV)/.dev
	$(BIN)/pytest -q tests/unit

integration: $(VENV)/.dev
	$(BIN)/pytest -q tests/integration

bench: $(VENV)/.installed
	$(PY) bench/proxy_bench.py

bench-failover: $(VENV)/.installed
	$(PY) bench/failover.py

bench-checks: $(VENV)/.installed
	$(PY) bench/check_cost.py

bench-vip: $(VENV)/.installed  # needs root: builds network namespaces
	$(PY) bench/vip_failover.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
