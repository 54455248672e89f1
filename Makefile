# Bascule: `make demo` to see it work, `make test` to run lint and every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: demo test build lint format unit integration system bench bench-failover bench-checks bench-vip clean

# `make demo` installs Bascule as pure Python and runs at once; the L7 data path is compiled
# with mypyc (a minute or more) by `make build`, and so by `make test` and `make bench`: once
# per change of its sources. The install builds in this venv (--no-build-isolation): pip's
# isolated build environment would first install mypy and every build requirement.
$(VENV)/.installed: pyproject.toml setup.py
	@$(PYTHON) -m venv $(VENV) || { echo "cannot create a venv: on Debian run 'apt-get install python3-venv'"; exit 1; }
	@echo "Installing Bascule in $(VENV) as pure Python (no compile: \`make build\` compiles the data path)"
	$(PY) -m pip install -q 'setuptools>=68' wheel
	BASCULE_PURE_PYTHON=1 $(PY) -m pip install -q --no-build-isolation -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.installed
	BASCULE_PURE_PYTHON=1 $(PY) -m pip install -q --no-build-isolation -e '.[dev]'
	@touch $@

# The L7 data path is compiled with mypyc next to its sources (setup.py); rebuild it when
# they change, or the old compiled code would keep running.
# (The list is COMPILED_MODULES in src/bascule/proxy/build.py; any proxy or balance module
# counts here.)
$(VENV)/.compiled: $(VENV)/.dev $(wildcard src/bascule/proxy/*.py src/bascule/balance/*.py) setup.py
	$(PY) setup.py -q build_ext --inplace
	@touch $@

build: $(VENV)/.compiled

# Once compiled (`make build`, `make test`), the demo keeps the compiled code up to date too.
demo: $(VENV)/.installed $(if $(wildcard $(VENV)/.compiled),$(VENV)/.compiled)
	$(BIN)/bascule demo

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench setup.py
	$(BIN)/ruff format --check src tests bench setup.py
	$(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff format src tests bench setup.py
	$(BIN)/ruff check --fix src tests bench setup.py

test: lint $(VENV)/.compiled
	$(BIN)/pytest -q -p no:cacheprovider  # -rs (skip reasons) is in pyproject.toml

unit: $(VENV)/.compiled
	$(BIN)/pytest -q tests/unit

integration: $(VENV)/.compiled
	$(BIN)/pytest -q tests/integration

bench: $(VENV)/.compiled
	$(PY) bench/proxy_bench.py

bench-failover: $(VENV)/.installed
	$(PY) bench/failover.py

bench-checks: $(VENV)/.installed
	$(PY) bench/check_cost.py

bench-vip: $(VENV)/.installed  # needs root: builds network namespaces
	$(PY) bench/vip_failover.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info src/*.so src/bascule/proxy/*.so src/bascule/balance/*.so .pytest_cache .mypy_cache .ruff_cache .hypothesis
