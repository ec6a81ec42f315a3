# Everything a fresh machine needs: `make test` and `make demo` set themselves up.
#   make test               lint, type-check and test on Airflow 3.3 (.venv)
#   make test AIRFLOW=2     the same on Airflow 2.11 (.venv-airflow2)
#   make test-all           both lines, one after the other (what CI runs)
#   make demo               run the example DAGs against the local Cronofy emulator
#   make bench              the benchmarks (prints ratios against the baselines)
#   make test-browser       the connection form in Airflow 3.3's UI, in headless Chromium
#   make lock               re-resolve requirements/airflow-*.txt on purpose

PYTHON ?= python3
AIRFLOW ?= 3
UV_VERSION = 0.13.9
VENV ?= $(if $(filter 2,$(AIRFLOW)),.venv-airflow2,.venv)
LOCK = requirements/airflow-$(AIRFLOW).txt
STAMP = $(VENV)/.installed
BIN = $(VENV)/bin

.PHONY: install test test-all test-browser lint demo bench lock clean

install: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python --compile-bytecode -r $(LOCK) -e .
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

test-all:
	$(MAKE) test AIRFLOW=3
	$(MAKE) test AIRFLOW=2

# Not part of `make test`: needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages
# chromium, chromium-driver). Selenium goes on top of the Airflow 3.3 venv; the lock constrains
# it, so installing it moves no package of the venv (uv fails loudly if it would).
test-browser: $(STAMP)
	$(if $(filter 2,$(AIRFLOW)),$(error the browser test runs on Airflow 3.3 only: drop AIRFLOW=2))
	$(BIN)/python -m uv pip install --quiet --python $(BIN)/python -r requirements/browser.txt -c $(LOCK)
	$(BIN)/pytest browser_tests

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

lock: $(STAMP)
	cd requirements && for line in 3 2; do \
	  ../$(BIN)/python -m uv pip compile --quiet --universal --python-version 3.10 \
	    airflow-$$line.in -o airflow-$$line.txt; done

clean:
	rm -rf .venv .venv-airflow2 .airflow-home-demo
