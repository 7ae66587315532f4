# One command each: `make run` (quick start), `make test` (everything CI runs).
# `make run HOST=0.0.0.0 PORT=9000` serves elsewhere; the feeds link to where they are served.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config/feedbridge.toml
HOST ?= 127.0.0.1
PORT ?= 8080
# `make build` writes the feeds for being served at this URL (`make run` links to HOST:PORT).
BASE_URL ?= http://$(HOST):$(PORT)/
# Marks a venv that also holds the test tools (pytest, hypothesis, mypy, ruff).
TEST_TOOLS := $(VENV)/.test-tools

.PHONY: run build test lint system-deps golden bench clean

# What running needs, nothing more.
$(BIN)/feedbridge: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	# Bytecode up front: every build is a fresh process, and PYTHONDONTWRITEBYTECODE (set in
	# some environments) would otherwise make each one compile feedbridge from source.
	$(BIN)/python -m compileall -q feedbridge
	touch $@

$(TEST_TOOLS): $(BIN)/feedbridge pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

build: $(BIN)/feedbridge
	$(BIN)/feedbridge build --config $(CONFIG) --base-url $(BASE_URL)

run: $(BIN)/feedbridge
	$(BIN)/feedbridge run --config $(CONFIG) --serve $(HOST):$(PORT)

# Debian tools the integration tests use: jing (RFC 4287 schema), nginx and systemd-analyze
# (deployment tests), chromium (browser tests of the pages).
system-deps:
	@if ! command -v jing >/dev/null || ! command -v nginx >/dev/null || ! command -v systemd-analyze >/dev/null || ! command -v chromium >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends jing nginx-light systemd chromium >/dev/null; \
	fi

lint: $(TEST_TOOLS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: system-deps $(TEST_TOOLS) lint
	$(BIN)/python -m pytest

golden: $(TEST_TOOLS)
	$(BIN)/python -m pytest tests/test_golden.py --regen-golden

bench: $(BIN)/feedbridge
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
