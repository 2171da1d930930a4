# `make demo` sets up .venv (once) and runs the built-in demo;
# `make test` sets up .venv (once) and runs the test suite.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/gdsolver demo

# Two pytest-xdist workers (the machine has two cores); tests are sent to them by module, the
# local-Ray modules together (tests/conftest.py). `make test PYTEST_WORKERS=0`: one process.
PYTEST_WORKERS ?= 2
PYTEST_XDIST := -n $(PYTEST_WORKERS) --dist loadscope

test: setup
	$(PY) -m pytest -q $(PYTEST_XDIST)

test-slow: setup
	$(PY) -m pytest -q -m slow $(PYTEST_XDIST)

bench: setup
	$(VENV)/bin/gdsolver bench compile

clean:
	rm -rf $(VENV) build *.egg-info
