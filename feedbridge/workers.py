"""I/O: the pools of worker processes a scan and a build fork, started and stopped one way.

``ProcessPoolExecutor``, not ``multiprocessing.Pool``: a worker that dies outright fails the
work with BrokenProcessPool instead of hanging it.  Forked, so the workers share what the
parent has imported and set up.

Stopping is where Ctrl-C bites.  The workers ignore SIGINT (``state.py``: a worker killed
mid-way through sending a result would leave its pool waiting forever for the rest), so an
interrupted pool is told to shut down without being waited for: its manager thread
cancels the jobs not started and ends with the running ones, and the interpreter's exit
waits for that much.  But a KeyboardInterrupt can land inside the pool itself, while it
starts that thread: joining it then raises RuntimeError (a traceback instead of the one-line
"interrupted"), and its workers, never to be given a job or told to stop, would keep the
interpreter's exit waiting forever; they have no job in hand, so they are killed.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


def fork_pool(workers: int, **options: Any) -> ProcessPoolExecutor:
    """A pool of ``workers`` forked processes (``options``: ``initializer``, ``initargs``)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, multiprocessing.get_context("fork"), **options)


def stop(pool: ProcessPoolExecutor, *, interrupted: bool) -> None:
    """Stop ``pool``: the jobs not started are cancelled, the running ones are waited for --
    unless ``interrupted`` (Ctrl-C), when nothing is waited for (see the module's doc)."""
    if not interrupted:
        pool.shutdown(wait=True, cancel_futures=True)
        return
    # The pool's own thread and processes: the only way to tell that its start was cut short.
    manager: threading.Thread | None = getattr(pool, "_executor_manager_thread", None)
    processes: dict[int, Any] = getattr(pool, "_processes", None) or {}
    idle = list(processes.values()) if manager is None or not manager.is_alive() else []
    pool.shutdown(wait=False, cancel_futures=True)
    for process in idle:
        with contextlib.suppress(OSError, ValueError):
            process.kill()
