"""Shared helpers for tests that build feeds."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from feedbridge.app import run_build
from feedbridge.config import Config
from feedbridge.dump import parse_dump
from feedbridge.errors import DumpError
from feedbridge.model import BuildReport
from feedbridge.scan import is_dump_name

from .conftest import BASE_URL, EDGE, NOW, REAL

#: Every copied dump gets this mtime, so mtime-dated dumps have a fixed, past time.
CORPUS_MTIME_NS = int(datetime(2025, 6, 1, 12, 0, tzinfo=UTC).timestamp()) * 10**9


def make_corpus(root: Path) -> Path:
    """The whole shared corpus as one dumps root: every real source plus ``edge``."""
    root.mkdir(parents=True, exist_ok=True)
    for source in sorted(REAL.iterdir()):
        shutil.copytree(source, root / source.name)
    shutil.copytree(EDGE, root / "edge")
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
        if p.is_file():
            os.utime(p, ns=(CORPUS_MTIME_NS, CORPUS_MTIME_NS))
    return root


def target_args(dumps: Path, out: Path, state: Path | None = None) -> list[str]:
    """The command-line options naming what to build and where."""
    args = ["--dumps", str(dumps), "--out", str(out), "--base-url", BASE_URL]
    return [*args, "--state", str(state)] if state else args


def build(
    dumps: Path,
    out: Path,
    config: Config | None = None,
    now: datetime = NOW,
    state: Path | None = None,
) -> BuildReport:
    return run_build(
        config or Config(), dumps=dumps, out=out, base_url=BASE_URL, state_dir=state, now=now
    )


@dataclass(frozen=True)
class Expected:
    id: str
    url: str
    title: str
    published: datetime
    path: Path


def expected_entries(folder: Path, *, now: datetime = NOW, limit: int = 50) -> list[Expected]:
    """What the spec says a source folder's feed holds, worked out without the index."""
    best: dict[str, Expected] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or not is_dump_name(path.name, "*.md"):
            continue
        mtime = datetime.fromtimestamp(path.stat().st_mtime_ns // 10**9, UTC)
        try:
            d = parse_dump(path.read_bytes(), path=str(path), mtime=mtime)
        except DumpError:
            continue
        if d.published > now:
            continue
        e = Expected(d.id, d.url, d.title, d.published, path)
        old = best.get(d.id)
        if old is None or (e.published, str(e.path)) > (old.published, str(old.path)):
            best[d.id] = e
    ordered = sorted(best.values(), key=lambda e: (e.published, str(e.path)), reverse=True)
    return ordered[:limit]


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }
