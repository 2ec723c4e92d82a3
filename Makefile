# Tessera: `make run` serves a demo tenant, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# Issuers follow the port make run serves on, unless set explicitly.
PUBLIC_URL ?= http://127.0.0.1:$(PORT)

.PHONY: run test lint bench venv browser screenshots
# The npm packages behind Node's built-ins in hooks (require('buffer'), ...),
# pinned in hooks/runtime/builtins.lock.json, fetched into var/npm once.
NPM_BUILTINS := var/npm/.builtins.installed

venv: $(VENV)/.installed $(NPM_BUILTINS)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(NPM_BUILTINS): hooks/runtime/builtins.lock.json $(VENV)/.installed
	$(PY) -m hooks.runtime.npm install-builtins
	touch $@

run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	PORT=$(PORT) PUBLIC_URL=$(PUBLIC_URL) $(PY) manage.py demo
	PUBLIC_URL=$(PUBLIC_URL) $(PY) manage.py runserver --noreload 127.0.0.1:$(PORT)

# Browser tests drive Debian's Chromium (Playwright cannot download one here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed: browser tests will be skipped (apt-get install chromium)"; fi; }

# The compatibility suite's node clients (tests/compat), pinned by its lock
# file; reinstalled only when the pins change, like the venv stamp.
COMPAT_NODE := tests/compat/node_modules/.installed

$(COMPAT_NODE): tests/compat/package.json tests/compat/package-lock.json
	cd tests/compat && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: venv browser $(COMPAT_NODE)
	$(PY) -m pytest $(PYTEST_ARGS)

# Refreshes docs/screenshots/ on purpose; `make test` never touches them.
screenshots: venv browser
	TESSERA_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/dashboard/test_browser.py -q -k "run_shows_claims or landing_page_shows"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run

bench: venv
	$(PY) bench/token_endpoint.py $(BENCH_ARGS)
