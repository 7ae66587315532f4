"""I/O: the dumps root as the daemon sees it: watched (the only watchfiles user), and checked
before every build (``root_problem``).

inotify watches a folder, not a path: once the root is deleted, renamed away, or mounted over,
the watch is dead and nothing says so.  ``watch_root`` wakes every ``RECHECK_MS`` even without
events, checks that the path still names the folder it watches, and when it does not, polls
for the root with backoff and watches it again once it is back.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from feedbridge.scan import folder_identity

logger = logging.getLogger(__name__)

#: watchfiles: wait this long for more changes before yielding a batch (ms).
DEBOUNCE_MS = 50
STEP_MS = 10
#: How often the watcher wakes without events to check the root is still the same (ms).
RECHECK_MS = 500
#: Polls for a missing root wait 0.1 s, 0.2 s, ... up to this (seconds).
POLL_FIRST = 0.1
POLL_CAP = 1.0
#: After a failure of the watcher itself (e.g. too many inotify watches), retries back off to
#: this (seconds); rescans keep the feeds current meanwhile.
FAILED_CAP = 60.0


def backoff(attempt: int, *, first: float, cap: float) -> float:
    """The wait before retry number ``attempt`` (0-based): first, 2*first, 4*first ... cap."""
    return min(cap, first * 2.0 ** min(attempt, 64))


def root_problem(root: Path, published: Callable[[], Collection[str]]) -> str | None:
    """Why a build from ``root`` now would take input that went missing for deleted input.

    None when the root can be read and holds a source folder, or holds none and no feed
    with entries is published (``published``, asked only then).  A root that is missing,
    unreadable, not a folder, or without a source folder while feeds show entries (an
    unmounted volume, a mount point left behind) is a problem: a build would empty or
    remove every feed.
    """
    try:
        with os.scandir(root) as it:
            sources = [e.name for e in it if not e.name.startswith(".") and _is_dir(e)]
    except FileNotFoundError:
        return "it is missing"
    except NotADirectoryError:
        return "it is not a folder"
    except OSError as e:
        return f"cannot read it ({e.strerror or e})"
    if not sources and published():
        return "it holds no source folder any more (an unmounted volume?)"
    return None


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def watch_root(
    root: Path,
    stop: threading.Event,
    *,
    on_changes: Callable[[set[str]], None],
    on_lost: Callable[[], None],
    on_rearmed: Callable[[], None],
) -> None:
    """Report changed paths under ``root`` until ``stop`` is set, whatever happens to it.

    ``on_changes`` gets each batch of changed absolute paths; ``on_lost`` is called once when
    the root goes missing; ``on_rearmed`` once a new watch runs after the root came back or
    was replaced (the caller rescans: what changed in between had no events).
    """
    attempt = 0
    rearm = lost = False
    while not stop.is_set():
        watched = folder_identity(root)
        if watched is None:
            if not lost:
                lost = rearm = True
                on_lost()
            stop.wait(backoff(attempt, first=POLL_FIRST, cap=POLL_CAP))
            attempt += 1
            continue
        lost = False
        try:
            for first, changes in _batches(root, stop):
                attempt = 0
                if first and rearm:
                    rearm = False
                    logger.info("watching %s again", root)
                    on_rearmed()
                if changes:
                    on_changes(changes)
                if folder_identity(root) != watched:
                    rearm = True
                    if folder_identity(root) is not None:
                        logger.info("dumps root %s was replaced; watching the new one", root)
                    break
        except Exception as e:  # any failure of the watcher: retry, rescans go on
            delay = backoff(attempt, first=POLL_FIRST, cap=FAILED_CAP)
            if attempt == 0:
                logger.warning(
                    "file watching failed: %s; trying again (rescans keep the feeds current)", e
                )
            logger.debug("file watching failed again: %s; next try in %g s", e, delay)
            attempt += 1
            rearm = True
            stop.wait(delay)


def _batches(root: Path, stop: threading.Event) -> Iterator[tuple[bool, set[str]]]:
    """(whether it is the first, changed absolute paths) for every wake of one watch."""
    import watchfiles

    first = True
    for changes in watchfiles.watch(
        root,
        watch_filter=None,
        debounce=DEBOUNCE_MS,
        step=STEP_MS,
        stop_event=stop,
        rust_timeout=RECHECK_MS,
        yield_on_timeout=True,
        raise_interrupt=False,
        ignore_permission_denied=True,
    ):
        yield first, {path for _change, path in changes}
        first = False
