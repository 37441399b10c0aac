# Two commands for a fresh clone (Python 3.10+):
#   make repro   # install into .venv, then run the whole pipeline (dvc repro)
#   make test    # install into .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test smoke ui

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,peers,video]'
	touch $@

repro: setup
	dvc repro

test: setup
	pytest -q

ui: setup
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --workers 1
