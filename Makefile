# Set-up and entry points. `make run` trains the main job; `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: run test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,offline-data]"
	touch $@

run: $(VENV)/.installed
	$(PY) -m experiments.paper1.ablation --config configs/paper1/ablation.py:quick

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 tests

bench: $(VENV)/.installed
	$(PY) benchmarks/scan.py

clean:
	rm -rf $(VENV) results
