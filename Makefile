# The README's two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test screenshots bench clean

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
