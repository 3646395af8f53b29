# RehabFlow: `make run` serves the app, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := app:create_app

.PHONY: run test install install-test lint clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	mkdir -p instance
	$(BIN)/flask db upgrade
	$(BIN)/flask workflows deploy
	$(BIN)/flask demo seed --once
	$(BIN)/flask run --host 127.0.0.1 --port 5000

test: install-test
	$(BIN)/ruff check app tests bench
	$(BIN)/python -m pytest

bench: install-test
	$(BIN)/python bench/engine.py --quick

clean:
	rm -rf $(VENV) instance/*.sqlite
