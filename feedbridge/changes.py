"""Pure: which changed dumps are ready to be read, from the file events the daemon got.

A file is read once no event has come for it for ``SETTLE`` seconds, so a writer that is
still writing is not published half-way.  Settling goes by the daemon's own clock, not by
file mtimes, which a copy or a skewed clock can put anywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

#: A changed file is read once it has been unchanged this long (seconds).
SETTLE = 0.25
#: A rescan asked by events waits for them to settle, but never longer than this (seconds):
#: a stream of events at the root cannot hold back publishing.
FULL_HOLD = 1.0


class Pending:
    """Changed paths (``source/name``) waiting to settle, and a rescan asked by events.

    Thread-safe: the watcher adds, the build thread takes.  ``clock`` gives monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        #: Path -> time of its last event.
        self._paths: dict[str, float] = {}
        #: Times of the first and the last event that asked for the pending rescan.
        self._full: tuple[float, float] | None = None

    def add(self, paths: Iterable[str], *, full: bool = False) -> None:
        """Events for ``paths`` now; ``full`` asks for a rescan."""
        now = self.clock()
        with self._lock:
            self._paths.update(dict.fromkeys(paths, now))
            if full:
                self._full = (self._full[0] if self._full else now, now)

    def take(self) -> tuple[set[str] | None, float | None]:
        """Take what has settled: (paths to build, or None for a rescan; seconds until the
        next of the rest settles, None if nothing is left).

        A pending rescan settles too (a root or a source folder being deleted is a burst of
        events: rescanning half-way would take a half-deleted tree for the new state);
        meanwhile no path is taken, the rescan covers them.
        """
        now = self.clock()
        with self._lock:
            if self._full is not None:
                first, last = self._full
                hold = min(SETTLE - (now - last), FULL_HOLD - (now - first))
                if hold > 0:
                    return set(), hold
                self._full = None
                self._paths.clear()
                return None, None
            ready = {rel for rel, seen in self._paths.items() if now - seen >= SETTLE}
            for rel in ready:
                del self._paths[rel]
            wait = min((SETTLE - (now - seen) for seen in self._paths.values()), default=None)
            return ready, wait

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._paths) or self._full is not None

    def __contains__(self, rel: str) -> bool:
        with self._lock:
            return rel in self._paths


def relative_changes(
    root: Path, paths: Iterable[str], is_file: Callable[[str], bool]
) -> tuple[set[str], bool]:
    """Changed absolute paths -> (``source/name`` paths, whether a rescan is needed).

    A change directly under the root (a source folder created, removed or renamed) needs a
    rescan, unless it is a file (``is_file``: a log the scraper keeps in the root is no
    source); so does a change of the root itself (deleted, or its permissions changed);
    deeper changes than ``source/name`` are not dumps.
    """
    rels: set[str] = set()
    full = False
    prefix = str(root).rstrip("/") + "/"
    for path in paths:
        if path.rstrip("/") + "/" == prefix:
            full = True
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        if len(parts) == 1 and not parts[0].startswith("."):
            full = full or not is_file(path)
        elif len(parts) == 2 and not parts[0].startswith("."):
            rels.add("/".join(parts))
    return rels, full
