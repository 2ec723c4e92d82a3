# Tessera: `make run` serves a demo tenant, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# Issuers follow the port make run serves on, unless set explicitly (the
# settings derive the same default from PORT, for manage.py in another shell).
PUBLIC_URL ?= http://127.0.0.1:$(PORT)
# The WSGI application granian serves (README, "Configuration").
WSGI_APP := tenant.site.wsgi:application

.PHONY: run test lint bench venv browser redis screenshots
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
	mkdir -p $(dir $@)
	touch $@

# What you would deploy (the README's production flags, one worker), on the
# embedded SQLite default unless DATABASE_URL says otherwise. Ctrl+C reaches
# granian's worker and its parent at once, and granian 2.8's worker then
# sometimes never stops (even serving a bare WSGI function): the kill
# timeout ends it.
run: export PORT := $(PORT)
run: export PUBLIC_URL := $(PUBLIC_URL)
run: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py demo
	@echo
	@echo "manage.py from another shell, against this server:"
	@echo "  cd $(CURDIR) && . $(VENV)/bin/activate && export PORT=$(PORT) PUBLIC_URL=$(PUBLIC_URL)"
	@echo
	TESSERA_PIN_WORKERS=1 $(VENV)/bin/granian --interface wsgi --host 127.0.0.1 --port $(PORT) --workers 1 \
	  --blocking-threads 64 --runtime-mode st --no-ws --respawn-failed-workers \
	  --workers-kill-timeout 5 $(WSGI_APP)

# Debian packages the suite runs, installed when missing if make runs as
# root: $(call apt_install,COMMAND,PACKAGE,what skips or fails without it).
define apt_install
@command -v $(1) >/dev/null 2>&1 || { \
  if [ "$$(id -u)" = 0 ]; then \
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
  else echo "$(1) is not installed: $(3) (apt-get install $(2))"; fi; }
endef

# Browser tests drive Debian's Chromium (Playwright cannot download one here).
browser:
	$(call apt_install,chromium,chromium,browser tests will be skipped)

# The suite starts its own redis-server (tests/tenant/test_dependencies.py, tests/fleet).
redis:
	$(call apt_install,redis-server,redis-server,its tests will fail)

# The compatibility suite's node clients (tests/compat), pinned by its lock
# file; reinstalled only when the pins change, like the venv stamp.
COMPAT_NODE := tests/compat/node_modules/.installed

$(COMPAT_NODE): tests/compat/package.json tests/compat/package-lock.json
	cd tests/compat && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: venv browser redis $(COMPAT_NODE)
	$(PY) -m pytest $(PYTEST_ARGS)

# Refreshes docs/screenshots/ on purpose; `make test` never touches them.
screenshots: venv browser
	TESSERA_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/dashboard/test_browser.py tests/dashboard/test_browser_activity.py -q -k "run_shows_claims or landing_charts_render"
	TESSERA_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/dashboard/test_browser_what_changes.py -q -k "side_by_side or recorded_inputs"

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py makemigrations --check --dry-run

bench: venv
	$(PY) bench/token_endpoint.py $(BENCH_ARGS)
