"""Wiring: state directory, lock and index around a Builder.  Used by the CLI and the daemon."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from feedbridge.build import Builder, Target
from feedbridge.config import Config
from feedbridge.index import Index
from feedbridge.model import BuildReport
from feedbridge.progress import Progress, no_progress
from feedbridge.state import INDEX_NAME, default_state_dir, locked, write_status


def status_of(report: BuildReport, now: datetime) -> dict[str, Any]:
    return {
        "last_build": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "feeds": {f.name: f.entries for f in report.feeds},
        "rejected": [str(r) for r in report.rejected],
        "future": [f"{d.path} {d.published:%Y-%m-%dT%H:%M:%SZ}" for d in report.future],
        "dumps": report.scanned,
    }


@contextlib.contextmanager
def open_builder(
    config: Config,
    *,
    dumps: Path,
    out: Path,
    base_url: str,
    state_dir: Path | None,
    parallel: bool = True,
    progress: Progress = no_progress,
    fallbacks: bool = False,
) -> Iterator[tuple[Builder, Path]]:
    """Lock the output, open its index and yield a Builder; released on exit."""
    state = state_dir or default_state_dir(out)
    with locked(state, out):
        index = Index(state / INDEX_NAME, root=dumps, out=out)
        target = Target(dumps=dumps, out=out, base_url=base_url, config=config)
        try:
            yield (
                Builder(target, index, parallel=parallel, progress=progress, fallbacks=fallbacks),
                state,
            )
        finally:
            index.close()


def run_build(
    config: Config,
    *,
    dumps: Path,
    out: Path,
    base_url: str,
    state_dir: Path | None,
    now: datetime,
    progress: Progress = no_progress,
    fallbacks: bool = True,
) -> BuildReport:
    """One locked build of one output folder."""
    with open_builder(
        config,
        dumps=dumps,
        out=out,
        base_url=base_url,
        state_dir=state_dir,
        progress=progress,
        fallbacks=fallbacks,
    ) as (builder, state):
        out.mkdir(parents=True, exist_ok=True)
        report = builder.build(now=now)
        write_status(state, status_of(report, now))
        return report
