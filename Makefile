# Everything runs inside a local virtual environment (.venv) that `make` creates and reuses.
# GPU machines: `make install TORCH_SPEC="torch==2.13.0" PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cu128"`
# or use environment.yml (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
PYTEST_ARGS ?=
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed

.PHONY: install test test-fast demo clean-venv

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24" "setuptools<82" wheel
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --ignore-requires-python promptsource==0.2.3
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# On TEST_WORKERS pytest workers: whole modules each, in the order tests/conftest.py gives them (the longest
# first), not xdist's (the most tests first).
WORKERS := -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

# Everything CI runs (the unit and e2e tiers).
test: $(STAMP)
	$(PY) -m pytest $(WORKERS) $(PYTEST_ARGS)

# The unit tier only: about a minute.
test-fast: $(STAMP)
	$(PY) -m pytest -m unit $(WORKERS) $(PYTEST_ARGS)

demo: $(STAMP)
	bash ./training/demo.sh

clean-venv:
	rm -rf $(VENV)
