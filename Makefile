# Two commands are the contract: `make demo` and `make test` (see README); `make test` runs
# ruff, mypy and the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean-venv catalogs messages

$(STAMP): pyproject.toml
	bash scripts/ensure_libarchive.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,dask]"
	$(MAKE) catalogs
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/triage demo --out demo-output

test: $(STAMP)
	bash scripts/ensure_chromium.sh || true
	bash scripts/ensure_fixture_tools.sh
	bash scripts/ensure_disk_tools.sh || true
	$(VENV)/bin/ruff check hashing index triage cli service benchmarks synthetic_fixtures tests
	$(VENV)/bin/mypy
	$(PY) -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(VENV)/bin/ruff check hashing index triage cli service benchmarks synthetic_fixtures tests
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/triage bench all --out benchmarks/results

clean-venv:
	rm -rf $(VENV)

# The .po catalogs are in git; the .mo files are built here (and compiled in memory from the .po
# when missing, so a clone that skipped this still speaks every language).
catalogs:
	$(VENV)/bin/pybabel -q compile -d hashing/locale -D osec_triage

# After adding or changing a translatable message: re-extract and merge into the catalogs.
messages: $(STAMP)
	$(PY) scripts/update_catalogs.py
