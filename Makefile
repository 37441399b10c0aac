# Two commands for a fresh clone (Python 3.10+):
#   make repro   # install into .venv, then run the whole pipeline (dvc repro)
#   make test    # install into .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup pip-install repro test test-units test-pipeline smoke ui lock

setup: $(VENV)/.installed

# the pinned versions of requirements.lock (what the tests ran with), then cliphand itself without resolving
# again. uv installs the lock's wheels in parallel and compiles their bytecode on every core: the whole
# `make setup` took 58 s here with an empty uv cache, against about 110 s with pip (64 s to install one wheel
# at a time, then compileall). uv reads PyPI (or UV_INDEX_URL), not pip's configuration, so where it cannot
# install, pip does the same from pip's indexes (`make pip-install`).
UV_VERSION ?= 0.13.9
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q uv==$(UV_VERSION) \
	  && $(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -r requirements.lock \
	  || $(MAKE) --no-print-directory pip-install
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# the fallback: pip installs the lock one wheel at a time, without its own bytecode compilation (one file at a
# time, about 60 s here); compileall then compiles on every core. A few third-party files are not valid
# Python 3 and stay uncompiled, as with pip, hence `|| true`
pip-install:
	$(BIN)/python -m pip install -q --no-compile -r requirements.lock
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true

# re-pin requirements.lock to what .venv holds now (after changing pyproject.toml's dependencies and testing)
lock: setup
	$(BIN)/python -m pip install -q pip-tools
	$(BIN)/pip freeze --exclude-editable | grep -v -e '^pip-tools==' -e '^build==' -e '^pyproject_hooks==' > $(VENV)/freeze.txt
	$(BIN)/pip-compile -q --no-strip-extras --extra test --extra peers --extra video -c $(VENV)/freeze.txt \
	  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host -o requirements.lock pyproject.toml
	@# the constraint file is a local temporary: keep it out of the committed lock
	sed -i -e '\|#   -c $(VENV)/freeze.txt|d' -e 's|--constraint=$(VENV)/freeze.txt|--constraint=<pip freeze of the tested .venv>|' \
	  -e '2s|$$|, pinned to the versions the test suite ran with (`make lock` regenerates it; `make setup` installs from it).|' requirements.lock

repro: setup
	dvc repro

# the smoke-pipeline module (mostly one core: DVC and stage start-up) and the unit tests side by side, each
# printed when it ends; `pytest` alone runs everything in one process
test: setup
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-units test-pipeline

# the pipeline module is the longer one: the unit tests run niced, on what CPU it leaves
test-units:
	CLIPHAND_TEST_THREADS=1 nice -n 10 pytest -q -rs -m "not slow"

# two workers, one per end-to-end module: one builds the smoke repository while the other waits (tests/conftest.py),
# then each module runs on its own copy, so the second core is not idle once the unit tests have ended.
# (--dist loadfile: loadgroup ignores its marks under pytest 9, pytest-xdist issue #1386)
test-pipeline:
	pytest -q -rs -m slow -n 2 --dist loadfile --durations=8

ui: setup
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --workers 1
