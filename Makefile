# Set-up and entry points. `make run` reproduces the papers at the quick scale (REPORT.md);
# `make test` runs the test suite, then the packaging check (.ci/package_check: the wheel in a
# fresh venv, used from outside the checkout). `make results` runs the :cpu plan (hours on 2
# cores; resumable) and publishes it: docs/results/ and the README's Results section; `make
# publish` publishes what has finished, each experiment from the first of RESULTS_FROM that
# holds it (so :quick fills in what :cpu has not run yet, and the report says which is which).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: run test results publish bench notebooks clean

RESULTS_FROM ?= results/cpu results/reproduce

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

results: $(VENV)/.installed
	$(VENV)/bin/ssm-jax reproduce --paper all --scale cpu --workdir results/cpu
	$(MAKE) publish

publish: $(VENV)/.installed
	$(PY) -m ssm_jax.experiments.publish $(wildcard $(RESULTS_FROM)) --out docs/results --readme README.md

notebooks: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[notebooks]"
	$(PY) notebooks/execute.py --full

bench: $(VENV)/.installed
	$(PY) benchmarks/scan.py

clean:
	rm -rf $(VENV) results
