# The README's two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test screenshots devnode clean monitoring-tools openapi

# setup.py compiles the backup chunker (atlas_tui/backup/_cdc.c) with gcc and the Python headers.
$(STAMP): pyproject.toml setup.py atlas_tui/backup/_cdc.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install --quiet -e '.[test]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import atlas_tui, textual, psutil, pytest, atlas_tui.backup._cdc"
	touch $(STAMP)

# The local Ethereum dev node (ganache, from the npm registry) that the node tests start.
# Without npm the install is skipped and those tests are skipped with the reason.
DEVNODE := devnode/node_modules/.bin/ganache
DEVNODE_STAMP := devnode/node_modules/.installed-stamp

$(DEVNODE_STAMP): devnode/package.json devnode/package-lock.json
	@if command -v npm >/dev/null; then \
	  cd devnode && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed-stamp; \
	else echo "npm not found: tests that need the Ethereum dev node will be skipped"; fi

# A dev node on 127.0.0.1:$(DEVNODE_PORT) that mines a block every 2 s; Ctrl+C stops it.
# deploy/example-config.json expects port 8545; `make devnode DEVNODE_PORT=18545` picks another.
DEVNODE_PORT ?= 8545
devnode: $(DEVNODE_STAMP)
	$(DEVNODE) --server.host 127.0.0.1 --server.port $(DEVNODE_PORT) --chain.chainId 1337 --miner.blockTime 2 \
	  --wallet.totalAccounts 1 --logging.quiet

# Debian's prometheus (with promtool) and prometheus-alertmanager for the tests that start
# them. Installed only when missing and only as root with apt-get, so a second run does nothing;
# without them those tests skip locally, and fail under CI=true.
MONITORING_PACKAGES := prometheus prometheus-alertmanager
monitoring-tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && \
	  command -v prometheus-alertmanager >/dev/null && exit 0; \
	if ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ]; then \
	  echo "prometheus/prometheus-alertmanager not installed and not root with apt-get: their tests skip (fail under CI=true)"; \
	  exit 0; fi; \
	echo "installing Debian packages: $(MONITORING_PACKAGES)"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -qq --no-install-recommends $(MONITORING_PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && \
	    apt-get install -y -qq --no-install-recommends $(MONITORING_PACKAGES) >/dev/null 2>&1; } || \
	  echo "installing $(MONITORING_PACKAGES) failed: their tests will fail under CI and skip elsewhere"

run: $(STAMP)
	$(VENV)/bin/atlas $(ARGS)

test: $(STAMP) $(DEVNODE_STAMP) monitoring-tools
	env -u TEXTUAL_THEME -u NO_COLOR -u TEXTUAL_COLOR_SYSTEM $(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache snapshot_report.html

# docs/openapi.json from the routes; tests/api/test_error_bodies.py fails until it is current.
openapi: $(STAMP)
	$(PY) -m atlas_tui.api.openapi_file docs/openapi.json

# Pictures of every pane at 80x24 and 160x48; PNGs too where rsvg-convert is installed.
screenshots: $(STAMP)
	command -v rsvg-convert >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -qq librsvg2-bin fonts-firacode fonts-symbola >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq librsvg2-bin fonts-firacode fonts-symbola >/dev/null 2>&1)); } || true
	env -u TEXTUAL_THEME -u NO_COLOR -u TEXTUAL_COLOR_SYSTEM $(PY) -m atlas_tui.console.screenshots screenshots
