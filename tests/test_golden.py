"""Golden feeds: the bundled example built with a pinned clock, byte for byte.

Regenerate after an intended output change, then review the diff:

    python -m pytest tests/test_golden.py --regen-golden
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from feedbridge.config import load_config

from .conftest import EXAMPLES, GOLDEN, REPO
from .helpers import build


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_golden_feeds(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    config = load_config(REPO / "config" / "feedbridge.toml")
    out = tmp_path / "out"
    build(EXAMPLES, out, config)
    got = _files(out)
    if request.config.getoption("--regen-golden"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(out, GOLDEN)
    want = _files(GOLDEN)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].decode() == want[name].decode(), name


def test_golden_covers_every_format() -> None:
    names = set(_files(GOLDEN))
    assert {
        "index.html",
        "feeds.opml",
        "voa/atom.xml",
        "voa/rss.xml",
        "voa/feed.json",
        "voa/index.html",
        "all/atom.xml",
        "rfi/feed.json",
    } <= names
