"""One log format for feedbridge and the libraries it runs; no library floods it."""

from __future__ import annotations

import logging
import threading
import warnings

import pytest

from feedbridge.logs import LineFormatter, RepeatFilter, setup_logging


def test_library_lines_share_the_format_and_repeats_do_not_flood(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(logging.INFO)
    for depth in range(100):
        logging.getLogger("waitress.queue").warning("Task queue depth is %d", depth)  # hidden
        logging.getLogger("waitress").warning("client %d: request head too long", depth)
    logging.getLogger("apscheduler.scheduler").info("Added job %r", "rescan")  # noise: hidden
    logging.getLogger("watchfiles.main").debug("rust notify timeout, continuing")
    logging.getLogger("feedbridge.daemon").info("updated %s", "voa")
    logging.getLogger("feedbridge.daemon").info("updated %s", "voa")  # ours are never dropped
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "feedbridge: WARNING: client 0: request head too long",
        "feedbridge: INFO: updated voa",
        "feedbridge: INFO: updated voa",
    ]


def test_setup_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(logging.WARNING)
    setup_logging(logging.WARNING)
    logging.getLogger("feedbridge.build").warning("once")
    assert capsys.readouterr().err == "feedbridge: WARNING: once\n"


def test_quiet_hides_library_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(logging.ERROR)
    logging.getLogger("waitress.queue").warning("Task queue depth is %d", 1)
    logging.getLogger("feedbridge").warning("hidden")
    logging.getLogger("feedbridge").error("shown")
    assert capsys.readouterr().err == "feedbridge: ERROR: shown\n"


def test_repeat_filter_lets_one_through_per_window_and_counts_the_rest() -> None:
    now = [0.0]
    f = RepeatFilter(window=60, clock=lambda: now[0])

    def record(name: str, msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)

    assert f.filter(record("waitress.queue", "Task queue depth is %d", 1))
    assert not f.filter(record("waitress.queue", "Task queue depth is %d", 2))
    assert not f.filter(record("waitress.queue", "Task queue depth is %d", 3))
    assert f.filter(record("waitress", "another template"))
    now[0] = 61.0
    again = record("waitress.queue", "Task queue depth is %d", 9)
    assert f.filter(again)
    assert again.getMessage() == "Task queue depth is 9 (2 more like it in the last 60 s)"
    assert f.filter(record("feedbridge.daemon", "rejected: %s", "x"))
    assert f.filter(record("feedbridge.daemon", "rejected: %s", "x"))


def test_every_line_of_a_traceback_has_the_prefix() -> None:
    try:
        raise ValueError("bug")
    except ValueError as e:
        rec = logging.LogRecord("feedbridge", logging.ERROR, __file__, 1, "failed", (), None)
        rec.exc_info = (type(e), e, e.__traceback__)
    lines = LineFormatter("%(message)s").format(rec).splitlines()
    assert len(lines) > 3
    assert all(line.startswith("feedbridge: ERROR: ") for line in lines)
    assert lines[-1] == "feedbridge: ERROR: ValueError: bug"


def test_warnings_and_dying_threads_keep_the_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(logging.INFO)

    def crash() -> None:
        raise RuntimeError("boom")

    t = threading.Thread(target=crash, name="feedbridge-test")
    t.start()
    t.join()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("careful", UserWarning, stacklevel=1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "feedbridge: ERROR: feedbridge-test stopped: boom"
    assert "feedbridge: ERROR: RuntimeError: boom" in lines
    assert any("UserWarning: careful" in line for line in lines)
    assert all(line.startswith(("feedbridge: ERROR: ", "feedbridge: WARNING: ")) for line in lines)
