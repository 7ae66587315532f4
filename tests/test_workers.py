"""Worker pools stopped after a Ctrl-C that landed inside the pool itself (feedbridge/workers.py).

Found by test_kill.py's Ctrl-C rounds under load: an interrupt during the start of the pool's
manager thread gave a traceback ("cannot join thread before it is started") or a build that
never exited.  Here the interrupt is made to land exactly there.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import process
from pathlib import Path
from typing import Any

import pytest

from feedbridge.workers import fork_pool, stop


def _square(n: int) -> int:
    return n * n


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _interrupt_start(monkeypatch: pytest.MonkeyPatch, *, after_starting: bool) -> list[Any]:
    """Make the pool's manager thread's start raise KeyboardInterrupt, as a Ctrl-C in its
    wait for the thread does: with the thread running (``after_starting``) or not started."""
    started: list[Any] = []
    real = process._ExecutorManagerThread.start

    def interrupted(thread: Any) -> None:
        if after_starting:
            real(thread)
            started.append(thread)
        raise KeyboardInterrupt

    monkeypatch.setattr(process._ExecutorManagerThread, "start", interrupted)
    return started


@pytest.mark.parametrize("after_starting", [False, True])
def test_a_pool_interrupted_as_it_starts_stops_at_once_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, after_starting: bool
) -> None:
    started = _interrupt_start(monkeypatch, after_starting=after_starting)
    pool = fork_pool(2)
    with pytest.raises(KeyboardInterrupt):
        pool.submit(_square, 3)
    pids = list(pool._processes or {})  # type: ignore[attr-defined]
    monkeypatch.undo()
    stop(pool, interrupted=True)  # neither raises nor waits
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(_gone(pid) for pid in pids), pids
    for thread in started:  # a manager thread the interpreter's exit would wait for
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert not [t for t in threading.enumerate() if isinstance(t, process._ExecutorManagerThread)]


def test_a_pool_stopped_normally_waits_for_what_it_runs() -> None:
    """Jobs not started are cancelled; every other one has finished when ``stop`` returns."""
    pool = fork_pool(2)
    futures = [pool.submit(_square, n) for n in range(40)]
    stop(pool, interrupted=False)
    assert all(f.done() for f in futures)
    assert all(f.cancelled() or f.result() == n * n for n, f in enumerate(futures))
    assert not [t for t in threading.enumerate() if isinstance(t, process._ExecutorManagerThread)]
