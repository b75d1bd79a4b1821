# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned: this wheel is available locally; an unpinned torch pulls a multi-GB CUDA build.
TORCH := torch==2.13.0
EXTRAS ?= dev,onnx,ray,certify,lm,dp

.PHONY: demo test lint bench system-deps install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/unmeasured demo --out runs/demo

# Debian packages the browser and Fashion-MNIST tests need. Installed when we are root
# (CI, containers); elsewhere those tests skip with a reason.
system-deps:
	@bash scripts/system-deps.sh

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n 2 --timeout 600 $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

# The peers (sacroml, ART) live in their own virtualenv so they cannot change ours.
PEERS := .venv-peers
$(PEERS)/.installed: pyproject.toml
	$(PY) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q --upgrade pip
	$(PEERS)/bin/pip install -q $(TORCH) sacroml==2.0.1 adversarial-robustness-toolbox==1.20.1
	$(PEERS)/bin/pip install -q -e .
	touch $(PEERS)/.installed

bench: $(STAMP) $(PEERS)/.installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(PEERS) runs .pytest_cache
