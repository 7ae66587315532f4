"""I/O: write a file only when its bytes differ, atomically.

An unchanged feed keeps its mtime, so a static server's ETag and Last-Modified stay valid and
readers get 304s; a failed write leaves the old file whole, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from feedbridge.compress import gzip_twin, twin_path
from feedbridge.errors import PublishError

#: Mode of published files: readable by the web server.
FILE_MODE = 0o644


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise PublishError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)  # noqa: PTH105 - the atomic step, named as such
    except BaseException as e:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        if isinstance(e, OSError):
            raise PublishError(f"cannot write {path}: {e.strerror or e}") from e
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it already holds exactly these bytes; True if written."""
    if read_bytes(path) == data:
        return False
    write_atomic(path, data)
    return True


def write_output(path: Path, data: bytes) -> bool:
    """Write a file of OUT and its ``.gz`` twin, only when the file's bytes change; True if so.

    The twin is written first: a process killed between the two writes leaves the old file
    beside the new twin, and the next build, seeing the file differ, writes both again.  (The
    other order could leave a stale twin behind a file that no longer changes.)  A file whose
    bytes are unchanged keeps its twin untouched; a missing twin is written.
    """
    twin = twin_path(path)
    if read_bytes(path) == data:
        if not twin.exists():
            write_atomic(twin, gzip_twin(data))
        return False
    write_if_changed(twin, gzip_twin(data))
    write_atomic(path, data)
    return True


def remove_output(path: Path) -> bool:
    """Delete a file of OUT and its twin; True if the file existed."""
    existed = False
    for victim in (path, twin_path(path)):
        try:
            victim.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise PublishError(f"cannot remove {victim}: {e.strerror or e}") from e
        existed = existed or victim == path
    return existed
