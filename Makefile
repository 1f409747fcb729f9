# The two commands README promises: `make demo` and `make test`. Each builds its own
# virtual environment (.venv) from nothing but a Python >= 3.11 on PATH.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Every pyenv interpreter that exists goes on PATH, so tox finds python3.11/3.12/3.13
# without anyone selecting versions by hand.
PYENV_BINS := $(wildcard $(HOME)/.pyenv/versions/3.1[1-9]*/bin)
export PATH := $(subst $(eval) ,:,$(strip $(PYENV_BINS))):$(PATH)

.PHONY: help venv demo test test-all lint type docs bench clean

help:
	@echo "make demo      run the demo: hub + service with the sensor + traffic + pytest --runtime-probe"
	@echo "make test      run the whole test suite on 3.11 (creates $(VENV)), 3.12 and 3.13 (tox), at once"
	@echo "make test-all  run the suite on every supported Python with tox"
	@echo "make lint type docs bench"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	@touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/python -m examples.shop.demo

# The whole suite on the venv's Python (3.11) and on every other supported interpreter that
# exists (through tox): the sensor's injection backend differs by version. tools/test_matrix.py
# runs TEST_JOBS interpreters at once (default 3), each with TEST_WORKERS xdist workers (default 2,
# scheduled with --dist worksteal: see tools/test_matrix.py),
# so the CPU stays busy while tests wait on the hub and service processes they start.
# pytest exits 5 when it collected no test: reported, not hidden, and not a failure.
test: venv
	$(BIN)/python tools/test_matrix.py $(if $(TEST_JOBS),--jobs $(TEST_JOBS)) \
		$(if $(TEST_WORKERS),--workers $(TEST_WORKERS)) -- $(PYTEST_ARGS)

test-all: venv
	$(BIN)/tox run-parallel -e py311,py312,py313 -p 3

lint: venv
	$(BIN)/tox -e lint

type: venv
	$(BIN)/tox -e type

docs: venv
	$(BIN)/tox -e docs

bench: venv
	set -e; for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script; done

clean:
	rm -rf $(VENV) .tox build dist site .mypy_cache .ruff_cache .pytest_cache
