"""I/O: the output's lock, and the state directory (index, status), kept outside OUT.

OUT holds only what readers may fetch.  The state directory defaults to
``$XDG_CACHE_HOME/feedbridge/<hash of OUT>`` (``~/.cache`` when XDG_CACHE_HOME is unset), so
every output folder has its own index.

The lock is an ``flock`` on the OUT folder itself (no file in OUT), so two processes writing the
same OUT exclude each other whatever their state folders; the state folder's ``lock`` file is
locked too, so two outputs never share one index at once.  flock locks die with the last
descriptor of their open file, so:

- every process forked while a lock is held closes its copies of the lock descriptors at once
  (``os.register_at_fork``), and dies with the process that forked it (``PR_SET_PDEATHSIG``):
  a ``kill -9`` of a build releases OUT and stops its worker processes with it;
- a lock is never stale: nothing is to be cleaned up after a crash but temporary files;
- Ctrl-C reaches the whole process group; the workers ignore it and the parent, interrupted,
  terminates them.

(The kernel's parent is the forking *thread*: workers must be forked by a thread that outlives
them, as a multiprocessing pool used in a ``with`` block is.)

The holder is named by its pid, read from ``/proc/locks`` (Linux), else from the state lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from feedbridge.errors import LockedError, PublishError, StateError
from feedbridge.publish import write_atomic, write_if_changed

logger = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite3"
LOCK_NAME = "lock"
STATUS_NAME = "status.json"
#: In the default state folder of an OUT built with another state folder: where that one is,
#: so that ``status --out OUT`` finds it.
POINTER_NAME = "state-dir"
#: linux/prctl.h
PR_SET_PDEATHSIG = 1


def default_state_dir(out: Path) -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return Path(cache) / "feedbridge" / f"{out.resolve().name or 'out'}-{digest}"


# -- the lock --------------------------------------------------------------------------------

#: Lock descriptors this process holds.
_held: list[int] = []
#: The pid of this process once it took a lock: from then on, every process it forks dies
#: with it -- also one forked after the lock was let go, as a multiprocessing pool's thread
#: may do while an interrupted build unwinds.
_owner: list[int] = []


#: libc's prctl, loaded when the lock is taken: not in a fork hook, where Python drops a
#: KeyboardInterrupt, and not in the child, which must not import (another thread of the
#: parent may have held the import lock).
_prctl: list[Callable[..., int]] = []
#: libc's pthread_sigmask(SIG_UNBLOCK, {SIGINT}), once SIGINT is blocked across every fork.
_unblock_sigint: list[Callable[[], int]] = []


def _load_libc() -> None:
    """Load prctl, and block SIGINT across every fork from now on.

    Python runs fork hooks (its own, logging's, ours) as Python code and drops any exception
    they raise: a Ctrl-C landing in one would be lost, and the build would go on.  Blocked
    around the fork by libc itself (signal.pthread_sigmask delivers pending signals inside
    the hook), a Ctrl-C surfaces in the code that forked, once the fork is done.
    """
    if _prctl or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _prctl.append(libc.prctl)
        sigset = (ctypes.c_ubyte * 128)()  # sigset_t
        sigset[(signal.SIGINT - 1) // 8] = 1 << ((signal.SIGINT - 1) % 8)
        block = functools.partial(libc.pthread_sigmask, 0, sigset, None)  # SIG_BLOCK
        unblock = functools.partial(libc.pthread_sigmask, 1, sigset, None)  # SIG_UNBLOCK
    except (OSError, AttributeError):
        return
    _unblock_sigint.append(unblock)
    os.register_at_fork(before=block, after_in_parent=unblock)


def _after_fork_in_child() -> None:
    """In every child of a process that took a lock: die with the parent; if the lock is
    held, leave Ctrl-C to the parent (it stops its workers itself: a pool whose workers die
    of SIGINT under it can wait forever for their results) and let go of the lock."""
    if _owner:
        die_with_parent(_owner.pop())  # first, whatever interrupts the rest
    if _held:
        with contextlib.suppress(ValueError):  # only the main thread may set handlers
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # (drops a SIGINT held back)
        for fd in _held:
            with contextlib.suppress(OSError):
                os.close(fd)
        _held.clear()
    if _unblock_sigint:
        _unblock_sigint[0]()


os.register_at_fork(after_in_child=_after_fork_in_child)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` dies (Linux, once a fork under
    the lock loaded prctl), and die now if it already did (it may have died between the
    fork and this call)."""
    if _prctl:
        _prctl[0](PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def locked(state_dir: Path, out: Path) -> Iterator[None]:
    """Hold OUT's lock and the state folder's for the duration, creating both folders.

    Raises LockedError naming the holder's pid, PublishError when OUT cannot be created or
    opened, StateError when the state folder cannot.
    """
    pid = os.getpid()
    out_fd = _open_out(out)
    state_fd = -1
    try:
        _take(out_fd, str(out), None, PublishError)
        state_fd = _open_state_lock(state_dir)
        _take(state_fd, f"state folder {state_dir}", state_fd, StateError)
        with contextlib.suppress(OSError):  # the pid is only a fallback for the message
            os.ftruncate(state_fd, 0)
            os.pwrite(state_fd, f"{pid}\n".encode(), 0)
        _load_libc()
        _held.extend((out_fd, state_fd))
        _owner[:] = [pid]
        yield
    finally:
        if os.getpid() == pid:  # not in a forked child unwinding this frame: it let go
            _release(state_fd, truncate=True)
            _release(out_fd, truncate=False)


def _release(fd: int, *, truncate: bool) -> None:
    """Let go of a lock taken (or tried) in this process and close its descriptor."""
    if fd < 0:
        return
    if fd in _held:  # ours: unlock it (and clear the pid we wrote)
        _held.remove(fd)
        with contextlib.suppress(OSError):
            if truncate:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _open_out(out: Path) -> int:
    try:
        out.mkdir(parents=True, exist_ok=True)
        return os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except FileExistsError as e:
        raise PublishError(f"output folder {out} is not a folder") from e
    except OSError as e:
        raise PublishError(f"cannot create output folder {out}: {e.strerror or e}") from e


def _open_state_lock(state_dir: Path) -> int:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        return os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except FileExistsError as e:
        raise StateError(f"state folder {state_dir} is not a folder") from e
    except OSError as e:
        raise StateError(f"cannot create state folder {state_dir}: {e.strerror or e}") from e


def _take(fd: int, what: str, pid_file: int | None, error: type[PublishError | StateError]) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LockedError(what, _holder(fd, pid_file)) from None
    except OSError as e:  # a file system without flock
        raise error(f"cannot lock {what}: {e.strerror or e}") from e


def _holder(fd: int, pid_file: int | None) -> int | None:
    pid = _flock_owner(fd) or None
    if pid is None and pid_file is not None:
        try:
            text = os.pread(pid_file, 32, 0).decode().strip()
            pid = int(text) if text else None
        except (OSError, ValueError):
            pid = None
    return pid


def _flock_owner(fd: int) -> int | None:
    """The pid holding an flock on ``fd``'s file, from /proc/locks; None if none or unknown."""
    try:
        st = os.fstat(fd)
        text = Path("/proc/locks").read_text("ascii", errors="replace")
    except OSError:
        return None
    return flock_owner(text, st.st_dev, st.st_ino)


def flock_owner(proc_locks: str, dev: int, ino: int) -> int | None:
    """Parse /proc/locks: ``1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`` (waiters have
    a ``->`` before FLOCK and are skipped).  0: held by a process whose pid is not visible
    here (another pid namespace)."""
    for line in proc_locks.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(inode), int(major, 16), int(minor, 16)) == (
                ino,
                os.major(dev),
                os.minor(dev),
            ):
                return max(int(fields[4]), 0)
        except ValueError:
            continue
    return None


def lock_holder(out: Path) -> tuple[bool, int | None]:
    """Whether a process holds OUT's lock now, and its pid when it can be told.

    Reads /proc/locks, so that looking never takes the lock from a build starting meanwhile;
    elsewhere it tries the lock (shared) and lets go at once.
    """
    try:
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False, None
    try:
        if Path("/proc/locks").is_file():
            pid = _flock_owner(fd)
            return pid is not None, pid or None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False, None
    finally:
        os.close(fd)


# -- the state folder ------------------------------------------------------------------------


def write_status(state_dir: Path, status: dict[str, Any]) -> None:
    data = json.dumps(status, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    try:
        write_atomic(state_dir / STATUS_NAME, data.encode("utf-8"))
    except PublishError as e:
        raise StateError(str(e)) from e


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _int_map(value: object) -> bool:
    return isinstance(value, dict) and all(type(n) is int for n in value.values())


#: What each field of ``status.json`` holds, as ``app.status_of`` and the daemon write it.
_STATUS_FIELDS: dict[str, Callable[[object], bool]] = {
    "last_build": lambda v: isinstance(v, str),
    "feeds": _int_map,
    "rejected": _str_list,
    "future": _str_list,
    "dumps": lambda v: type(v) is int,
    "scanned": lambda v: type(v) is int,
    "pid": lambda v: v is None or type(v) is int,
    "serving": lambda v: v is None or isinstance(v, str),
}


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """``status.json``, None when there is none; StateError when it is not what a build
    writes (it is written atomically: only damage from outside makes it so)."""
    path = state_dir / STATUS_NAME
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise StateError(f"{path} is damaged ({e}); the next build writes it again") from e
    except OSError as e:
        raise StateError(f"cannot read {path}: {e.strerror or e}") from e
    if not isinstance(data, dict):
        raise StateError(f"{path} is damaged (not an object); the next build writes it again")
    bad = [key for key, ok in _STATUS_FIELDS.items() if key in data and not ok(data[key])]
    if bad:
        raise StateError(f"{path} is damaged ({', '.join(bad)}); the next build writes it again")
    status: dict[str, Any] = data
    return status


def record_state_dir(out: Path, state_dir: Path) -> None:
    """Leave in OUT's default state folder where its state is, when it is elsewhere.

    Best effort: without it only ``status`` needs to be told ``--state``.
    """
    default = default_state_dir(out)
    pointer = default / POINTER_NAME
    try:
        if state_dir.resolve() == default.resolve():
            pointer.unlink(missing_ok=True)
        else:
            write_if_changed(pointer, f"{state_dir.resolve()}\n".encode())
    except (OSError, PublishError) as e:
        logger.debug("cannot record the state folder in %s: %s", pointer, e)


def find_state_dir(out: Path) -> Path:
    """The state folder the last build of OUT used: the default one, or the one it points to."""
    default = default_state_dir(out)
    try:
        text = (default / POINTER_NAME).read_text("utf-8").strip()
    except (OSError, ValueError):
        return default
    return Path(text) if text else default
