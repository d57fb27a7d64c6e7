# The README's two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test screenshots clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install --quiet -e '.[test]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import atlas_tui, textual, psutil, pytest"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/atlas $(ARGS)

test: $(STAMP)
	env -u TEXTUAL_THEME -u NO_COLOR -u TEXTUAL_COLOR_SYSTEM $(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache snapshot_report.html

# Pictures of every pane at 80x24 and 160x48; PNGs too where rsvg-convert is installed.
screenshots: $(STAMP)
	command -v rsvg-convert >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -qq librsvg2-bin fonts-firacode fonts-symbola >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq librsvg2-bin fonts-firacode fonts-symbola >/dev/null 2>&1)); } || true
	env -u TEXTUAL_THEME -u NO_COLOR -u TEXTUAL_COLOR_SYSTEM $(PY) -m atlas_tui.console.screenshots screenshots
