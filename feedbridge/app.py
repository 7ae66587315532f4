"""Wiring: lock, state folder and index around a Builder.  Used by the CLI and the daemon.

Errors from below are made feedbridge's here, at the boundary: SQLite's and those of files in
the state folder become StateError, those of files in OUT PublishError.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from feedbridge.build import Builder, Target
from feedbridge.config import Config
from feedbridge.errors import FeedbridgeError, PublishError, StateError
from feedbridge.index import Index
from feedbridge.model import BuildReport
from feedbridge.progress import Progress, no_progress
from feedbridge.publish import remove_temporaries
from feedbridge.state import (
    INDEX_NAME,
    default_state_dir,
    locked,
    record_state_dir,
    write_status,
)

logger = logging.getLogger(__name__)


def status_of(report: BuildReport, now: datetime) -> dict[str, Any]:
    return {
        "last_build": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "feeds": {f.name: f.entries for f in report.feeds},
        "rejected": [str(r) for r in report.rejected],
        "future": [f"{d.path} {d.published:%Y-%m-%dT%H:%M:%SZ}" for d in report.future],
        "dumps": report.archive,
        "scanned": report.scanned,
    }


@contextlib.contextmanager
def foreign_errors(*, out: Path, state: Path) -> Iterator[None]:
    """Turn SQLite's errors and OSErrors about files in OUT or the state folder into ours."""
    try:
        yield
    except FeedbridgeError:
        raise
    except sqlite3.Error as e:
        raise StateError(f"index {state / INDEX_NAME}: {e}") from e
    except OSError as e:
        path = Path(e.filename) if isinstance(e.filename, str) else None
        reason = e.strerror or str(e)
        if path is not None and _inside(path, state):
            raise StateError(f"cannot write {path}: {reason}") from e
        if path is not None and _inside(path, out):
            raise PublishError(f"cannot write {path}: {reason}") from e
        raise


def _inside(path: Path, folder: Path) -> bool:
    return path.absolute().is_relative_to(folder.absolute())


class LockedBuilder(Builder):
    """The Builder of a locked output: its errors are feedbridge's, its report counts the
    archive."""

    state_dir: Path
    #: Dumps in the index: counted by a full build, kept up to date by a build of some paths
    #: (a daemon's, after a change) from the rows of those paths, which cost a lookup each.
    archive: int | None = None

    def build(self, *, now: datetime, paths: Iterable[str] | None = None) -> BuildReport:
        with foreign_errors(out=self.target.out, state=self.state_dir):
            rels = None if paths is None else sorted(set(paths))
            before = self._known(rels) if rels is not None and self.archive is not None else 0
            report = super().build(now=now, paths=rels)
            if rels is None or self.archive is None or self.scanned_all:
                self.archive = self.index.count()  # a build of paths may have scanned all
            else:
                self.archive += self._known(rels) - before
            return replace(report, archive=self.archive)

    def _known(self, rels: list[str]) -> int:
        return sum(self.index.signature(rel) is not None for rel in rels)


def remove_litter(out: Path, state: Path) -> None:
    """Remove the temporary files of writers that were killed (call it under the lock).

    OUT is walked whole (not through symlinks); the state folders only at their top, where
    status.json and the pointer to a state folder elsewhere are written.
    """
    removed = remove_temporaries(out, recursive=True)
    try:
        removed += remove_temporaries(state, recursive=False)
    except PublishError as e:
        raise StateError(str(e)) from e
    with contextlib.suppress(PublishError):  # best effort, as the pointer itself
        removed += remove_temporaries(default_state_dir(out), recursive=False)
    for path in removed:
        logger.info("removed %s, left by an interrupted write", path)


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
    """Lock the output, clean it, open its index and yield a Builder; released on exit."""
    state = state_dir or default_state_dir(out)
    with locked(state, out):
        with foreign_errors(out=out, state=state):
            remove_litter(out, state)
            index = Index(state / INDEX_NAME, root=dumps, out=out)
        record_state_dir(out, state)
        target = Target(dumps=dumps, out=out, base_url=base_url, config=config)
        builder = LockedBuilder(
            target, index, parallel=parallel, progress=progress, fallbacks=fallbacks
        )
        builder.state_dir = state
        try:
            yield builder, state
        finally:
            with contextlib.suppress(sqlite3.Error):
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
        report = builder.build(now=now)
        write_status(state, status_of(report, now))
        return report
