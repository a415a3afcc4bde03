# The two commands: `make run` and `make test`. Both install everything they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO   := var/demo

.PHONY: run test lint install system-packages bench loadtest-objects clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/edgeshield demo --out $(DEMO)
	$(BIN)/edgeshield serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/shellcheck .ci/run .ci/container-install.sh .ci/system-packages.sh

system-packages:
	sh .ci/system-packages.sh

test: install system-packages lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python loadtests/bench/hit_bench.py

loadtest-objects: install
	$(BIN)/python loadtests/make_objects.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
