# Set-up and entry points. `make run` reproduces the papers at the quick scale (REPORT.md);
# `make test` runs the test suite, then the packaging check (.ci/package_check: the wheel in a
# fresh venv, used from outside the checkout).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: run test bench notebooks clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,offline-data]"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/ssm-jax reproduce --paper all --scale quick --workdir results/reproduce

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 tests
	PYTHON=$(PYTHON) bash .ci/package_check

notebooks: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[notebooks]"
	$(PY) notebooks/execute.py --full

bench: $(VENV)/.installed
	$(PY) benchmarks/scan.py

clean:
	rm -rf $(VENV) results
