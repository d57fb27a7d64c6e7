# The README's two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test screenshots devnode clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install --quiet -e '.[test]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import atlas_tui, textual, psutil, pytest"
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

run: $(STAMP)
	$(VENV)/bin/atlas $(ARGS)

test: $(STAMP) $(DEVNODE_STAMP)
	env -u TEXTUAL_THEME -u NO_COLOR -u TEXTUAL_COLOR_SYSTEM $(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache snapshot_report.html

# Pictures of every pane at 80x24 and 160x48; PNGs too where rsvg-convert is installed.
screenshots: $(STAMP)
	command -v rsvg-convert >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -qq librsvg2-bin fonts-firacode fonts-symbola >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq librsvg2-bin fonts-firacode fonts-symbola >/dev/null 2>&1)); } || true
	env -u TEXTUAL_THEME -u NO_COLOR -u TEXTUAL_COLOR_SYSTEM $(PY) -m atlas_tui.console.screenshots screenshots
