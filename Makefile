# One command each (README): `make demo` sets up .venv and runs the demo (outputs in out/demo/, ignored);
# `make test` sets up .venv and runs README's test command. ARGS: extra arguments (make test ARGS='-m "not slow"',
# make demo ARGS='--properties eos,elastic')
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c scripts/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export OMP_NUM_THREADS ?= 1

.PHONY: demo test

demo: $(VENV)/.demo-deps
	$(PY) scripts/demo.py $(ARGS)

# README "Run the tests": python -m pytest -q -ra, with the venv active (its bin first on PATH); make stops with
# an error whenever pytest's exit status is not 0 (failures, errors, nothing collected)
test: $(VENV)/.test-deps
	PATH="$(abspath $(VENV))/bin:$$PATH" VIRTUAL_ENV="$(abspath $(VENV))" python -m pytest -q -ra $(ARGS)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.demo-deps: pyproject.toml scripts/constraints.txt | $(PY)
	$(PIP) -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml scripts/constraints.txt | $(PY)
	$(PIP) -e ".[test,nn,surrogate]"
	touch $@
