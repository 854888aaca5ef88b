# paramedic — one command per job; each creates .venv and installs into it when needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3
# test workers: most tests wait on real processes (PostgreSQL, Prometheus, supervisord), so more
# workers than the 2 cores still shortens the run; JOBS=0 runs the suite in this process, serially
JOBS   ?= 4

.PHONY: demo test check lint types imports unit screenshots bench lab clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)            ## the main job: heal a hung and a crash-looping service, then the MTTR table
	$(VENV)/bin/paramedic demo

test: check unit          ## every check CI runs: lint, types, import rules, then the test suite

unit: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) --dist loadgroup

screenshots: $(STAMP)     ## refresh docs/screenshots/*.png from the browser and chart tests (the suite never writes them)
	PARAMEDIC_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/test_ui_browser.py tests/test_enrich_prometheus.py

check: lint types imports

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests $(wildcard bench)
	$(VENV)/bin/ruff format --check src tests $(wildcard bench)

types: $(STAMP)
	$(VENV)/bin/mypy

imports: $(STAMP)
	$(VENV)/bin/lint-imports

bench: $(STAMP)           ## benchmarks; results go to docs/benchmarks.md
	$(PY) -m bench.run

lab: $(STAMP)             ## every lab scenario on the real stack, with baselines; table + chart in docs/lab
	$(VENV)/bin/paramedic lab all --baseline --out docs/lab

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
