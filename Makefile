# Two entry points a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PHOTOS ?= photos
WORK ?= work/demo

.PHONY: demo test lint install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Real photos, then stage 1 (BYOL), stage 2, stage 3 (ORL), the probe and the report.
# Interrupt it at any point and run it again: finished stages are reused, the rest resumes.
demo: install
	$(BIN)/orl photos $(PHOTOS)
	$(BIN)/orl run --config demo --out $(WORK) --resume

# Style, types, imports pointing one way, every docs/... path that is named exists, and no
# module past 400 lines nor function past 60.
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src
	$(BIN)/pytest -q -p no:cacheprovider tests/test_layering.py tests/test_doc_paths.py \
		tests/test_sizes.py

test: lint
	$(BIN)/pytest -q tests
