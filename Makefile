# RehabFlow: `make run` serves the app, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := app:create_app

.PHONY: run test install install-test assets translations browser lint clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed assets translations

# Front-end packages from npm, exactly as package-lock.json pins them, copied into app/static/dist.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

app/static/dist/.built: node_modules/.installed app/static/build.mjs $(wildcard app/static/src/*.js)
	npm run --silent build
	touch $@

assets: app/static/dist/.built

# Compiled message catalogues (the .po files are the source; .mo files are not committed).
translations: $(VENV)/.installed
	$(BIN)/pybabel compile -d app/translations

# Debian's chromium for the browser tests (never `playwright install`); CJK fonts for readable screenshots.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium fonts-noto-cjk; fi; }

install-test: $(VENV)/.installed-test assets translations browser

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
	rm -rf $(VENV) node_modules app/static/dist instance/*.sqlite
