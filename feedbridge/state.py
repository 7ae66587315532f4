"""I/O: the state directory (index, lock, status), kept outside OUT.

OUT holds only what readers may fetch.  The state directory defaults to
``$XDG_CACHE_HOME/feedbridge/<hash of OUT>`` (``~/.cache`` when XDG_CACHE_HOME is unset), so
every output folder has its own index and its own lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from feedbridge.errors import LockedError
from feedbridge.publish import write_atomic

INDEX_NAME = "index.sqlite3"
LOCK_NAME = "lock"
STATUS_NAME = "status.json"


def default_state_dir(out: Path) -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return Path(cache) / "feedbridge" / f"{out.resolve().name or 'out'}-{digest}"


@contextlib.contextmanager
def locked(state_dir: Path, out: Path) -> Iterator[None]:
    """Hold the output's lock for the duration; raise LockedError naming the holder's pid.

    flock locks die with their process, so a crash never leaves a stale lock.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(str(out), _holder(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def write_status(state_dir: Path, status: dict[str, Any]) -> None:
    data = json.dumps(status, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    write_atomic(state_dir / STATUS_NAME, data.encode("utf-8"))


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((state_dir / STATUS_NAME).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data
