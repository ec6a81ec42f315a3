# Everything a fresh machine needs: `make test` and `make demo` set themselves up.
#   make test                 lint, type-check and test on Airflow 3.3 (.venv)
#   make test AIRFLOW=2.11    the same on another line: 2.11, 3.0, 3.1, 3.2 (.venv-airflow-<line>)
#                             (AIRFLOW=2 and AIRFLOW=3 are aliases for 2.11 and 3.3)
#   make test-all             every line, one after the other
#   make demo                 run the example DAGs against the local Cronofy emulator
#   make bench                the benchmarks (prints ratios against the baselines)
#   make dist                 build the sdist and wheel into dist/, twine check, inspect the wheel
#   make release-check        make dist, then install the wheel on every line and check it there
#   make test-browser         the connection form in Airflow 3.3's UI, in headless Chromium
#   make test-live            opt-in check against the real Cronofy (not in `make test` or CI):
#                             needs AIRFLOW_CONN_CRONOFY_LIVE and CRONOFY_LIVE_CALENDAR_ID
#   make lock                 re-resolve requirements/*.txt on purpose
#   make docs                 the manual (Sphinx, warnings as errors) into docs/_build/html
#   make bench-plot           the performance page's plot (docs/images/rate-at-150ms.png)

PYTHON ?= python3
AIRFLOW ?= 3.3
LINES = 2.11 3.0 3.1 3.2 3.3
UV_VERSION = 0.13.9

# AIRFLOW=2 and AIRFLOW=3 (what the README documented before the matrix) mean 2.11 and 3.3.
LINE := $(patsubst 2,2.11,$(patsubst 3,3.3,$(AIRFLOW)))
ifeq ($(filter $(LINE),$(LINES)),)
$(error AIRFLOW=$(AIRFLOW) is not a tested line; choose one of $(LINES), or 2 / 3)
endif
VENV ?= $(if $(filter 3.3,$(LINE)),.venv,.venv-airflow-$(LINE))
LOCK = requirements/airflow-$(LINE).txt
STAMP = $(VENV)/.installed
BIN = $(VENV)/bin

# uv, build and twine live in a venv of their own: never in a test venv, never in the user's.
TOOLS = .venv-tools
UV = $(TOOLS)/bin/uv
TOOLS_STAMP = $(TOOLS)/.installed

.PHONY: install tools test test-all test-browser test-live lint demo bench dist release-check lock clean
.PHONY: docs bench-plot

install: $(STAMP)

$(TOOLS_STAMP): requirements/tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip install --quiet --python $(TOOLS)/bin/python -r requirements/tools.txt
	touch $@

tools: $(TOOLS_STAMP)

$(STAMP): $(LOCK) pyproject.toml airflow_provider_cronofy/__init__.py $(TOOLS_STAMP)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python --compile-bytecode -r $(LOCK) -e .
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

test-all:
	for line in $(LINES); do $(MAKE) test AIRFLOW=$$line || exit 1; done

# Not part of `make test`: needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages
# chromium, chromium-driver). Selenium goes on top of the Airflow 3.3 venv; the lock constrains
# it, so installing it moves no package of the venv (uv fails loudly if it would).
test-browser: $(STAMP)
	$(if $(filter-out 3.3,$(LINE)),$(error the browser test runs on Airflow 3.3 only: drop AIRFLOW=$(AIRFLOW)))
	$(UV) pip install --quiet --python $(BIN)/python -r requirements/browser.txt -c $(LOCK)
	$(BIN)/pytest browser_tests

# Not part of `make test` or CI: creates and deletes test events in a real calendar. Fails at
# once, naming both, without AIRFLOW_CONN_CRONOFY_LIVE and CRONOFY_LIVE_CALENDAR_ID.
test-live: $(STAMP)
	$(BIN)/python scripts/live_check.py

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# The docs' and the plot's dependencies go on top of the Airflow 3.3 venv, constrained by its lock
# like selenium (autodoc imports the package, so Airflow must be there). -E -a: a full rebuild
# every time, so that -W sees every page's warnings, not only the changed pages'.
docs: $(STAMP)
	$(if $(filter-out 3.3,$(LINE)),$(error the docs build on Airflow 3.3 only: drop AIRFLOW=$(AIRFLOW)))
	$(UV) pip install --quiet --python $(BIN)/python -r requirements/docs.txt -c $(LOCK)
	AIRFLOW_HOME=$(CURDIR)/.airflow-home-docs $(BIN)/sphinx-build -E -a -W --keep-going -n -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

bench-plot: $(STAMP)
	$(if $(filter-out 3.3,$(LINE)),$(error the plot runs on Airflow 3.3 only: drop AIRFLOW=$(AIRFLOW)))
	$(UV) pip install --quiet --python $(BIN)/python -r requirements/bench.txt -c $(LOCK)
	$(BIN)/python benchmarks/bench_rate_plot.py $(BENCH_PLOT_ARGS)

dist: $(TOOLS_STAMP)
	rm -rf dist
	$(TOOLS)/bin/python -m build --quiet --installer uv --outdir dist .
	$(TOOLS)/bin/twine check --strict dist/*
	$(TOOLS)/bin/python scripts/check_dist.py dist

release-check: dist
	$(TOOLS)/bin/python scripts/check_release.py --uv $(UV) --python $(PYTHON) $(LINES)

# Airflow 3.0.6 and 3.2.2 set no upper bound on fastapi, cadwyn or starlette, and today's
# releases of those break their in-process execution API (dag.test, `airflow dags test`:
# "TITerminalStatePayload needs a discriminator field", "'State' object has no attribute
# 'svcs_registry'"). Their locks are resolved as of a week after the release, as Airflow's own
# constraints-<version>.txt are; the other lines resolve today.
RESOLVED_AS_OF_3.0 = 2025-09-05T00:00:00Z
RESOLVED_AS_OF_3.2 = 2026-06-05T00:00:00Z
# ... except ruff (pinned in every .in to one release) and the provider's own HTTP client, which
# resolve as of the date below on those lines too: the provider's behaviour must not change with
# the line (urllib3 2.5 percent-encodes a space in a host where later releases refuse the URL).
OURS_AS_OF = $(addsuffix =2026-11-28T00:00:00Z,ruff requests urllib3)

define compile
cd requirements && ../$(UV) pip compile --quiet --universal --python-version 3.10 $(2) $(1).in -o $(1).txt

endef

lock: $(TOOLS_STAMP)
	$(foreach line,$(LINES),$(call compile,airflow-$(line),$(if $(RESOLVED_AS_OF_$(line)),--exclude-newer $(RESOLVED_AS_OF_$(line)) $(addprefix --exclude-newer-package ,$(OURS_AS_OF)))))
	$(call compile,tools,)
	$(call compile,browser,-c airflow-3.3.txt)
	$(call compile,bench,-c airflow-3.3.txt)
	cd requirements && ../$(UV) pip compile --quiet --universal --python-version 3.11 -c airflow-3.3.txt docs.in -o docs.txt

clean:
	rm -rf .venv .venv-airflow-* .venv-airflow2 .venv-tools .airflow-home-demo dist build
	rm -rf docs/_build .airflow-home-docs
