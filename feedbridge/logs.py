"""Logging for the command line: every line ``feedbridge: LEVEL: message``, whoever logs it.

The library configures no handlers; the CLI calls ``setup_logging`` once.  One handler on the
root logger carries feedbridge's own loggers and those of the libraries it runs (APScheduler,
watchfiles, waitress), so a log is one format.  The libraries log only warnings and errors,
and a library line that repeats (waitress's "Task queue depth is N" under load) is let
through at most once per ``REPEAT_WINDOW`` seconds, with a count of those left out.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

#: Every line of the log starts with this name.
PREFIX = "feedbridge"
#: Libraries whose loggers feedbridge's handler carries: warnings and errors only.
LIBRARIES = ("apscheduler", "watchfiles", "waitress", "whitenoise", "py.warnings")
#: Library loggers that say nothing an operator acts on: errors only.  waitress's "Task queue
#: depth is N" is the server thinking aloud under load, not an event.
QUIET = ("waitress.queue",)
#: A library's line with the same template is logged at most once per this many seconds.
REPEAT_WINDOW = 60.0


class LineFormatter(logging.Formatter):
    """``feedbridge: LEVEL: message`` on every line, also each line of a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        head = f"{PREFIX}: {record.levelname}: "
        return "\n".join(head + line for line in text.splitlines() or [""])


class RepeatFilter(logging.Filter):
    """Let a library's message template through once per ``window`` seconds.

    Records of feedbridge's own loggers always pass (they are one line per event by design).
    The first record let through after a quiet spell says how many like it were left out.
    """

    def __init__(
        self, window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        #: (logger, template) -> (when it was last let through, how many were left out since)
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == PREFIX or record.name.startswith(PREFIX + "."):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self.window:
            self._seen[key] = (last[0], last[1] + 1)
            return False
        self._seen[key] = (now, 0)
        if last is not None and last[1]:
            record.msg = f"{record.msg} ({last[1]} more like it in the last {self.window:g} s)"
        return True


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def make_handler() -> logging.Handler:
    handler = _Stderr()
    handler.setFormatter(LineFormatter("%(message)s"))
    handler.addFilter(RepeatFilter())
    return handler


def setup_logging(level: int) -> None:
    """Log feedbridge's records at ``level`` and the libraries' warnings, all to stderr.

    Replaces a handler an earlier call installed (tests call the CLI many times in one
    process) and leaves other handlers of the root logger (pytest's) alone.
    """
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _Stderr)]
    root.addHandler(make_handler())
    root.setLevel(max(level, logging.WARNING))
    own = logging.getLogger(PREFIX)
    own.setLevel(level)
    own.propagate = True
    own.handlers[:] = []
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Python's warnings and a thread that dies of an exception write to stderr on their own:
    # through the handler, they keep the format too.
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    exc = args.exc_value if args.exc_value is not None else args.exc_type()
    logging.getLogger(PREFIX).error(
        "%s stopped: %s", name, exc, exc_info=(args.exc_type, exc, args.exc_traceback)
    )
