from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FEEDBRIDGE_SHARED", REPO.parent / "shared")).resolve()
CORPUS = SHARED / "corpus"
EDGE = CORPUS / "edge"
REAL = CORPUS / "real"
SPEC = SHARED / "spec"
EXAMPLES = REPO / "config" / "dumps"
GOLDEN = REPO / "tests" / "golden"
#: The pinned clock of every test that builds: after every corpus date, before future.md.
NOW = datetime(2026, 1, 1, tzinfo=UTC)
BASE_URL = "https://feeds.example.org/"


def real_dumps() -> list[Path]:
    return sorted(p for p in REAL.rglob("*.md") if p.is_file())


def edge_files() -> list[Path]:
    return sorted(p for p in EDGE.iterdir() if p.is_file())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="Rewrite tests/golden from the current code (review the diff!)",
    )


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own state root: no test sees another's index."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    yield


@pytest.fixture(scope="session")
def corpus_present() -> None:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared corpus is missing at {CORPUS} (set FEEDBRIDGE_SHARED)")


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """``setup_logging`` (every CLI call) touches process-wide loggers: a ``-q`` in one test
    must not silence the next test's ``caplog``.  Put back what it changes."""
    import logging
    import threading

    from feedbridge.logs import LIBRARIES, PREFIX, QUIET

    names = ["", PREFIX, *LIBRARIES, *QUIET]
    hook = threading.excepthook
    saved = {
        n: (lg.level, lg.propagate, list(lg.handlers))
        for n in names
        for lg in [logging.getLogger(n)]
    }
    yield
    for n, (level, propagate, handlers) in saved.items():
        lg = logging.getLogger(n)
        lg.setLevel(level)
        lg.propagate = propagate
        lg.handlers[:] = handlers
    logging.captureWarnings(False)
    threading.excepthook = hook
