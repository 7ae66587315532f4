"""I/O: write a file only when its bytes differ, atomically.

An unchanged feed keeps its mtime, so a static server's ETag and Last-Modified stay valid and
readers get 304s; a failed write leaves the old file whole, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from feedbridge.compress import gzip_twin, twin_path
from feedbridge.errors import PublishError

#: Mode of published files: readable by the web server.
FILE_MODE = 0o644
#: Temporary files are ``.NAME.feedbridge.XXXXXXXX.tmp`` (XXXXXXXX: mkstemp's random part):
#: hidden, so never served, and marked, so the cleanup never takes a file it did not write.
TMP_MARK = ".feedbridge."
TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"\..+\.feedbridge\.[a-z0-9_]{8}\.tmp")


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}{TMP_MARK}", suffix=TMP_SUFFIX
        )
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


def file_signature(paths: Iterable[Path]) -> list[list[object]]:
    """Name, size and mtime of each file (None for a missing one): what a build compares to
    tell whether files it wrote were changed or deleted behind its back."""
    sig: list[list[object]] = []
    for p in paths:
        try:
            st = p.stat()
            sig.append([p.name, st.st_size, st.st_mtime_ns])
        except FileNotFoundError:
            sig.append([p.name, None, None])
    return sig


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it already holds exactly these bytes; True if written."""
    if read_bytes(path) == data:
        return False
    write_atomic(path, data)
    return True


def write_output(path: Path, data: bytes, twin: bytes | None = None) -> bool:
    """Write a file of OUT and its ``.gz`` twin, only when their bytes change; True if the
    file changed.

    The twin is written first and the file second, and a file whose bytes are unchanged still
    has its twin checked: a process killed between the two writes (or between two builds that
    would have written different bytes) can leave a twin that belongs to no version of the
    file, and the next build that renders the file mends it.  ``twin``, when given, is
    ``gzip_twin(data)`` computed already.
    """
    write_if_changed(twin_path(path), gzip_twin(data) if twin is None else twin)
    return write_if_changed(path, data)


class Outputs:
    """Files of OUT written together: compressed while the caller works on, written at once.

    ``add`` starts a thread that compresses a file's twin (zlib and hashlib let go of the GIL),
    so it overlaps the rendering of the next document; ``write`` lets every thread write its
    file with the twin (``write_output``: the files' fsyncs wait for the disk side by side)
    and joins them, raising the first file's error.  Leaving the ``with`` block without
    ``write`` (the caller failed) writes nothing.  No thread outlives the block, so none is
    alive when a build forks its workers.
    """

    def __init__(self) -> None:
        self._items: list[tuple[Path, list[bool | BaseException], threading.Thread]] = []
        self._go = threading.Event()
        self._writing = False

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self._go.set()  # without ``write``: the threads end without writing
        for _, _, thread in self._items:
            thread.join()

    def add(self, path: Path, data: bytes) -> None:
        # Compressed even when the file is unchanged: its twin is checked too (write_output).
        outcome: list[bool | BaseException] = []

        def work() -> None:
            try:
                twin = gzip_twin(data)
                self._go.wait()
                if self._writing:
                    outcome.append(write_output(path, data, twin))
            except BaseException as e:  # re-raised by ``write`` in the caller's thread
                outcome.append(e)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self._items.append((path, outcome, thread))

    def write(self) -> list[Path]:
        """Write every added file that changed, with its twin; the paths written, in order."""
        self._writing = True
        self._go.set()
        for _, _, thread in self._items:
            thread.join()
        written = []
        for path, outcome, _ in self._items:
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            if outcome[0]:
                written.append(path)
        return written


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


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of write_atomic's temporary files."""
    return _TMP_NAME.fullmatch(name) is not None


def remove_temporaries(folder: Path, *, recursive: bool) -> list[Path]:
    """Remove the temporary files a killed writer left in ``folder``; returns them.

    Only names of write_atomic's exact pattern go; symlinks are neither followed nor removed.
    Call it only while holding the lock, when no writer of ours can be at work.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    except OSError as e:
        raise PublishError(f"cannot list {folder}: {e.strerror or e}") from e
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                removed.extend(remove_temporaries(Path(entry.path), recursive=True))
        elif is_temporary(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)  # noqa: PTH108 - a scandir entry
            except FileNotFoundError:
                continue
            except OSError as e:
                raise PublishError(f"cannot remove {entry.path}: {e.strerror or e}") from e
            removed.append(Path(entry.path))
    return removed
