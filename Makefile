# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint install

$(PY):
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch and torchvision are pinned (pyproject.toml); pip takes them from this machine's disk.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[api,worker,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/impasto demo

test: $(STAMP)
	./deploy/local/ensure-services.sh
	./deploy/local/ensure-browser.sh
	./deploy/local/ensure-proxy.sh
	$(PY) -m pytest -m "not slow and not gpu" -q

test-slow: $(STAMP)
	./deploy/local/ensure-services.sh
	$(PY) -m pytest -m slow -q

lint: $(STAMP)
	$(VENV)/bin/ruff check api worker shared impasto tests bench
	$(VENV)/bin/mypy api worker shared impasto
