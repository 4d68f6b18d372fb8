# dpsim: `make demo` runs the whole pipeline on generated sample data; `make test` runs the tests.
# Only Python 3.11+ and make are needed: everything else is installed into .venv from pyproject.toml.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
DPSIM  := $(VENV)/bin/dpsim
STAMP  := $(VENV)/.installed
CONF   ?= conf/default.yaml
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help install demo drr report screenshots test test-slow lint shred process aggregate bench bench-quick clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dask]'
	@touch $@

install: $(STAMP) ## create .venv and install dpsim with test extras

demo: $(STAMP) ## generate a sample drop, shred it, process it, print the summary
	$(DPSIM) synth --out data/sample --securities 6 --days 3 --start 2024-10-03 --seed 7
	$(DPSIM) shred --config $(CONF)
	$(DPSIM) process --config $(CONF)

drr: $(STAMP) ## the real DRR day (../shared/data/drr-2024-09-05) end to end into lake-drr/
	$(DPSIM) shred --config conf/drr.yaml
	$(DPSIM) process --config conf/drr.yaml

report: $(STAMP) ## the report of CONF's lake as report.html (make report CONF=conf/drr.yaml)
	$(DPSIM) report --config $(CONF) $(ARGS)

screenshots: $(STAMP) ## refresh the report screenshots in docs/ (DRR day, headless chromium)
	DPSIM_SCREENSHOT_DIR=docs $(PY) -m pytest tests/test_report_browser.py -k drr -p no:cacheprovider

test: $(STAMP) ## run the test suite (slow scale tests excluded)
	$(PY) -m pytest $(ARGS)

test-slow: $(STAMP) ## run only the slow scale tests
	$(PY) -m pytest -m slow $(ARGS)

lint: $(STAMP) ## ruff (format check + lint) and mypy
	$(VENV)/bin/ruff format --check dpsim tests
	$(VENV)/bin/ruff check dpsim tests
	$(VENV)/bin/mypy dpsim

shred: $(STAMP) ## shred the inputs of CONF into its lake (make shred CONF=conf/x.yaml)
	$(DPSIM) shred --config $(CONF) $(ARGS)

process: $(STAMP) ## process the lake of CONF (make process CONF=conf/x.yaml ARGS="--workers 2")
	$(DPSIM) process --config $(CONF) $(ARGS)

aggregate: $(STAMP) ## rerun the aggregations of CONF
	$(DPSIM) aggregate --config $(CONF)

bench: $(STAMP) ## full benchmark harness (long; writes bench/results/ and BENCHMARKS.md tables)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/run.py --full $(ARGS)

bench-quick: $(STAMP) ## a <= 2 minute benchmark subset for development
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/run.py --quick $(ARGS)

clean: ## remove generated data and lakes (keeps .venv)
	rm -rf data lake/* lake-drr bench/work
