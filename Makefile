# bstui: two commands for a newcomer.
#   make run    set up (once) and run `bstui` live on ./experiments.toml
#   make test   set up (once, with dev tools), check format and lint (ruff) and the layering (import-linter),
#               and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run headless test setup setup-dev bench docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

run: setup
	$(BIN)/bstui $(ARGS)

headless: setup
	$(BIN)/python -m trainer run $(ARGS)

test: setup-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(ARGS)

bench: setup
	$(BIN)/python bench/pipeline.py

# docs/config.md from the schema's field docstrings (a test fails when it is stale)
docs: setup
	$(BIN)/python -m trainer.config.doc

clean:
	rm -rf $(VENV) .pytest_cache
