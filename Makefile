# dpsim: `make demo` runs the whole pipeline on generated sample data; `make test` runs the tests.
# Only Python 3.11+ and make are needed: everything else is installed into .venv from pyproject.toml.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
DPSIM  := $(VENV)/bin/dpsim
STAMP  := $(VENV)/.installed-run
TESTED := $(VENV)/.installed-test
CONF   ?= conf/default.yaml
ARGS   ?=
# The suite on two processes (pytest-xdist): many tests wait on a subprocess, a server or a browser, so one
# process leaves a core idle (README, "Two commands"). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install demo drr report screenshots test test-slow lint shred process aggregate bench bench-quick clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# Two installs: what runs (demo, drr, shred, process, …: dpsim and its dependencies only) and what tests
# (the test and Dask extras on top: pytest, pytest-xdist, ruff, mypy, moto, boto3, playwright, distributed).
# An editable install has no bytecode: compileall writes it, else a machine that does not write bytecode
# (PYTHONDONTWRITEBYTECODE) compiles every module a command imports on every run (0.3 s of `dpsim process`).
# The replay kernel and the rank pass are compiled by numba into its cache once here, not by the first
# `dpsim process` or `dpsim aggregate`.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	$(PY) -m compileall -q dpsim
	$(PY) -c "from dpsim.steps.matching import compile_kernel; from dpsim.ranks import load_kernel; compile_kernel(); load_kernel()"
	@touch $@

$(TESTED): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,dask]'
	@touch $@

install: $(TESTED) ## create .venv and install dpsim with the test and Dask extras

demo: $(STAMP) ## generate a sample drop, shred it, process it, print the summary and what to try next
	$(DPSIM) synth --out data/sample --securities 6 --days 3 --start 2024-10-03 --seed 7
	$(DPSIM) shred --config $(CONF)
	$(DPSIM) process --config $(CONF)
	@echo
	@echo "Next, try (dpsim is in .venv/bin: run 'source .venv/bin/activate' to call it as plain 'dpsim'):"
	@echo "  $(DPSIM) status                      # the runs of the lake, as a table (--json, --watch)"
	@echo "  $(DPSIM) monitor                     # the live dashboard: open http://127.0.0.1:8765/"
	@echo "  $(DPSIM) process --dry-run           # what a rerun would do (every partition is unchanged)"
	@echo "  $(DPSIM) sql \"SELECT scenario, world, delta_is_bps, ci_low, ci_high FROM headline\""
	@echo "  $(DPSIM) sql                         # the catalog's views and their columns"
	@echo "  $(DPSIM) fidelity                    # the real Centre Point trades the replay misses, by cause"
	@echo "  $(PY) -m pip install duckdb-cli && $(VENV)/bin/duckdb lake/dpsim.duckdb   # plain DuckDB on the lake"

drr: $(STAMP) ## the real DRR day (../shared/data/drr-2024-09-05) end to end into lake-drr/
	$(DPSIM) shred --config conf/drr.yaml
	$(DPSIM) process --config conf/drr.yaml

report: $(STAMP) ## the report of CONF's lake as report.html (make report CONF=conf/drr.yaml)
	$(DPSIM) report --config $(CONF) $(ARGS)

screenshots: $(TESTED) ## refresh the report screenshots in docs/ (DRR day, headless chromium)
	DPSIM_SCREENSHOT_DIR=docs $(PY) -m pytest tests/test_report_browser.py -k drr -p no:cacheprovider

test: $(TESTED) ## run the test suite (slow scale tests excluded) on TEST_WORKERS processes
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(ARGS)

test-slow: $(TESTED) ## run only the slow scale tests
	$(PY) -m pytest -m slow $(ARGS)

lint: $(TESTED) ## ruff (format check + lint), mypy and the import-layer contract (pyproject [tool.importlinter])
	$(VENV)/bin/ruff format --check dpsim tests bench
	$(VENV)/bin/ruff check dpsim tests bench
	$(VENV)/bin/mypy dpsim tests bench
	$(VENV)/bin/lint-imports

shred: $(STAMP) ## shred the inputs of CONF into its lake (make shred CONF=conf/x.yaml)
	$(DPSIM) shred --config $(CONF) $(ARGS)

process: $(STAMP) ## process the lake of CONF (make process CONF=conf/x.yaml ARGS="--workers 2")
	$(DPSIM) process --config $(CONF) $(ARGS)

aggregate: $(STAMP) ## rerun the aggregations of CONF
	$(DPSIM) aggregate --config $(CONF)

bench: $(TESTED) ## full benchmark harness (long; writes bench/results/ and BENCHMARKS.md tables)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m bench.run --full $(ARGS)

bench-quick: $(TESTED) ## a <= 2 minute benchmark subset for development
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m bench.run --quick $(ARGS)

clean: ## remove generated data and lakes (keeps .venv)
	rm -rf data lake/* lake-drr bench/work
