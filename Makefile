# Two entry points for a fresh machine with Python 3.11: `make demo` and `make test`.
# Each creates .venv (and installs the project into it) when missing or out of date.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dgqa-installed

.PHONY: demo test lint benchmark clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) jobs/full_pipeline.py

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check dgqa_ray jobs tests
	$(VENV)/bin/ruff format --check dgqa_ray jobs tests

benchmark: $(STAMP)
	$(PY) jobs/benchmark.py distortions

clean:
	rm -rf $(VENV) dgqa_output .pytest_cache
