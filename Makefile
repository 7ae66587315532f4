# One command each: `make run` (quick start), `make test` (everything CI runs).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config/feedbridge.toml

.PHONY: run build test lint system-deps golden bench clean

$(BIN)/feedbridge: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	# Bytecode up front: every build is a fresh process, and PYTHONDONTWRITEBYTECODE (set in
	# some environments) would otherwise make each one compile feedbridge from source.
	$(BIN)/python -m compileall -q feedbridge
	touch $@

build: $(BIN)/feedbridge
	$(BIN)/feedbridge build --config $(CONFIG)

run: $(BIN)/feedbridge
	$(BIN)/feedbridge run --config $(CONFIG) --serve 127.0.0.1:8080

# Debian tools the integration tests use: jing (RFC 4287 schema), nginx and systemd-analyze
# (deployment tests), chromium (browser tests of the pages).
system-deps:
	@if ! command -v jing >/dev/null || ! command -v nginx >/dev/null || ! command -v systemd-analyze >/dev/null || ! command -v chromium >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends jing nginx-light systemd chromium >/dev/null; \
	fi

lint: $(BIN)/feedbridge
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: system-deps lint
	$(BIN)/python -m pytest

golden: $(BIN)/feedbridge
	$(BIN)/python -m pytest tests/test_golden.py --regen-golden

bench: $(BIN)/feedbridge
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
