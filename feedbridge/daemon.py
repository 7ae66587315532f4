"""``feedbridge run``: keep the feeds current.  The only APScheduler user.

- A full rescan every ``interval`` seconds: a date job that schedules the next one when it is
  done, so two are never queued (coalesced, one at a time).
- File events (``watch.py``) queue the changed paths; a ``changes`` job rebuilds only what
  they touch, once each file has been still for ``SETTLE`` seconds, so a file is never
  published half-written by a writer that is still at it.  A change directly under the root
  (a source folder made or removed) asks for a rescan, which settles the same way.
- A ``future`` job wakes at the time of the next future-dated dump and publishes it.
- A failed build (a full disk, a broken state folder) is retried by a ``retry`` job after
  1 s, 2 s, 4 s ... up to the interval; logged once per streak of failures.
- Input that went missing never removes feeds: while the dumps root is missing, unreadable,
  or holds no source folder though the index knows some (an unmounted volume), builds are
  skipped with one warning and the published feeds stay as they are.
- SIGTERM/SIGINT finish the build in progress and exit; SIGHUP reloads the configuration
  (an invalid one is logged and the running one kept).

Every job runs in one worker thread, so builds never overlap and the index is only ever
touched by that thread.  A one-off job is not submitted again while an instance of it waits
to start, so the executor never piles them up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from feedbridge.app import open_builder, status_of
from feedbridge.build import Builder
from feedbridge.changes import SETTLE, Pending, relative_changes
from feedbridge.config import Config, load_config
from feedbridge.errors import ConfigError, FeedbridgeError, PublishError
from feedbridge.model import BuildReport
from feedbridge.state import write_status
from feedbridge.watch import backoff, root_problem
from feedbridge.websub import STOP_WAIT, Publisher, pings_of

logger = logging.getLogger(__name__)

#: Queued instances allowed for a one-off job (they still run one at a time); a job is not
#: submitted while one of its instances waits, so this is only a safety margin.
ONE_OFF_INSTANCES = 16
#: A failed build is retried after this many seconds, then twice as long each time, up to
#: the rescan interval.
RETRY_FIRST = 1.0
#: How long shutdown waits for the HTTP server and watcher threads (seconds).
JOIN_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Overrides:
    """Settings given on the command line; they win over the config file, also on reload."""

    dumps: Path
    out: Path
    base_url: str | None
    interval: float | None
    state_dir: Path | None
    #: The address --serve links to when neither --base-url nor the config sets base_url.
    served_base_url: str | None = None


class Daemon:
    """One output folder kept current until a signal says stop."""

    def __init__(
        self,
        *,
        config: Config,
        config_file: Path | None,
        overrides: Overrides,
        base_url: str,
        serve: tuple[str, int] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.config_file = config_file
        self.overrides = overrides
        self.base_url = base_url
        self.serve = serve
        self.clock = clock
        self.interval = overrides.interval or config.interval
        self._stop = threading.Event()
        #: Set by SIGHUP; the main loop schedules the reload (no scheduler calls in a handler).
        self._hup = threading.Event()
        #: Held while a job runs; shutdown takes it to let the build in progress finish.
        self._busy = threading.Lock()
        self._watch_stop = threading.Event()
        #: Changed paths waiting to be read.
        self._pending = Pending()
        #: One-off jobs with an instance waiting to start, and when it is due.
        self._waiting: dict[str, datetime] = {}
        self._jobs_lock = threading.Lock()
        self._reported: set[str] = set()
        self._future_reported: set[str] = set()
        self._warned: set[str] = set()
        #: Builds failed in a row; the retry waits grow with it.
        self._failures = 0
        self._status_failing = False
        #: Why the dumps root cannot be built from now (None: it can), logged when it changes.
        self._root_problem: str | None = None
        self._root_lock = threading.Lock()
        self._announced = False
        #: WebSub pings go out from its threads; a ping never waits for a build, nor one for it.
        self._publisher = Publisher(None)
        self._builder: Builder | None = None
        self._state: Path | None = None
        self._scheduler: Any = None
        self.server_url: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def run(self) -> int:
        o = self.overrides
        with open_builder(
            self.config,
            dumps=o.dumps,
            out=o.out,
            base_url=self.base_url,
            state_dir=o.state_dir,
            parallel=False,
        ) as (builder, state):
            self._builder, self._state = builder, state
            self._publisher = Publisher(state)
            previous = self._install_signals()  # from here on, SIGTERM means a clean stop
            try:
                self._serve_until_stopped(o)
            finally:
                _restore_signals(previous)
                self._publisher.close(STOP_WAIT)
        return 0

    def _serve_until_stopped(self, o: Overrides) -> None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        try:
            o.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PublishError(f"cannot create {o.out}: {e.strerror or e}") from e
        server = self._start_server()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._scheduler.add_listener(self._job_failed, EVENT_JOB_ERROR)
        # An instance that never starts must not leave its job marked as waiting, or nothing
        # would submit it again (a safety net: neither happens with one instance waiting).
        self._scheduler.add_listener(
            lambda event: self._started(event.job_id), EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED
        )
        watcher = threading.Thread(target=self._watch, name="feedbridge-watch", daemon=True)
        try:
            self._scheduler.start()
            self._schedule("rescan", self._job_rescan, self.clock())
            watcher.start()
            logger.info("watching %s, writing %s (pid %d)", o.dumps, o.out, os.getpid())
            while not self._stop.wait(0.2):
                if self._hup.is_set():
                    self._hup.clear()
                    self._schedule("reload", self._job_reload, self.clock(), once=True)
            logger.info("stopping")
        finally:
            self._watch_stop.set()
            if self._scheduler.running:
                # Not shutdown(wait=True): it holds the scheduler's job store lock while it
                # waits, and a running job that schedules the next one would deadlock.
                self._scheduler.shutdown(wait=False)
            with self._busy:  # the build in progress, if any, finishes
                pass
            if server is not None:
                server.close()
            if watcher.is_alive():
                watcher.join(timeout=JOIN_TIMEOUT)

    def _start_server(self) -> Any:
        if self.serve is None:
            return None
        from feedbridge.serve import Server

        server = Server(self.overrides.out, *self.serve, link=self._link)
        server.start()
        self.server_url = server.url  # announced once the first build is done
        return server

    def _announce(self) -> None:
        """Say where OUT is served, once the first build has published what it could."""
        if self._announced:
            return
        self._announced = True
        if self.server_url is not None:
            url = self.server_url
            logger.info("serving %s -- subscribe to %sNAME/atom.xml", url, url)

    def _link(self, url_path: str) -> str | None:
        from feedbridge.websub import link_header

        return link_header(self.config, self.base_url, url_path)

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return previous
        for sig, handler in (
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
            (signal.SIGHUP, self._on_hup),
        ):
            previous[sig] = signal.signal(sig, handler)
        return previous

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._hup.set()

    # -- file events ------------------------------------------------------------------------

    def _watch(self) -> None:
        from feedbridge.watch import watch_root

        root = self.overrides.dumps
        watch_root(
            root,
            self._watch_stop,
            on_changes=lambda paths: self.queue(relative_changes(root, paths, os.path.isfile)),
            on_lost=lambda: self._note_root(root_problem(root, list) or "it is missing"),
            on_rearmed=lambda: self.queue((set(), True)),
        )

    def queue(self, changes: tuple[set[str], bool]) -> None:
        """Queue changed paths (relative to the dumps root); ``full`` asks for a rescan."""
        paths, full = changes
        if not paths and not full:
            return
        self._pending.add(paths, full=full)
        self._schedule("changes", self._job_changes, self.clock(), once=True)

    def _schedule(
        self, job_id: str, func: Callable[[], None], when: datetime, *, once: bool = False
    ) -> None:
        """Run ``func`` at ``when`` as job ``job_id``, replacing one not yet due.

        With ``once``, nothing is submitted while an instance of the job due no later is
        waiting to start: that instance will see what the caller queued.
        """
        if self._scheduler is None or self._stop.is_set():
            return
        with self._jobs_lock:
            if once:
                waiting = self._waiting.get(job_id)
                if waiting is not None and waiting <= when:
                    return
            self._scheduler.add_job(
                func,
                "date",
                run_date=when,
                id=job_id,
                replace_existing=True,
                misfire_grace_time=None,
                max_instances=ONE_OFF_INSTANCES,
            )
            if once:
                self._waiting[job_id] = when

    def _started(self, job_id: str) -> None:
        """An instance of a job starts: what is queued from now on needs another one."""
        with self._jobs_lock:
            self._waiting.pop(job_id, None)

    # -- jobs (all in the one worker thread) ------------------------------------------------

    def _job_changes(self) -> None:
        self._started("changes")
        with self._busy:
            if not self._stop.is_set():
                self._changes()

    def _job_rescan(self) -> None:
        started = self.clock()
        with self._busy:
            if self._stop.is_set():
                return
            self._build(None)
        self._schedule("rescan", self._job_rescan, started + timedelta(seconds=self.interval))

    def _job_retry(self) -> None:
        with self._busy:
            if not self._stop.is_set():
                self._build(None)

    def _job_future(self) -> None:
        with self._busy:
            if not self._stop.is_set():
                self._build([])

    def _job_reload(self) -> None:
        self._started("reload")
        with self._busy:
            if not self._stop.is_set():
                self._reload()

    def _changes(self) -> None:
        paths, wait = self._pending.take()
        if paths is None or paths:
            self._build(paths)
        builder = self._builder
        if builder is not None and builder.unsettled:
            self._pending.add(builder.unsettled)
            wait = SETTLE if wait is None else min(wait, SETTLE)
        if self._pending:
            delay = wait if wait is not None else 0.0
            when = self.clock() + timedelta(seconds=max(delay, 0.01))
            self._schedule("changes", self._job_changes, when, once=True)

    def _reload(self) -> None:
        if self.config_file is None:
            logger.warning("SIGHUP: no --config file to reload")
            return
        try:
            config = load_config(self.config_file)
        except ConfigError as e:
            logger.error("SIGHUP: %s; keeping the running configuration", e)
            return
        builder = self._builder
        if builder is None:
            return
        base_url = self.overrides.base_url or config.base_url or self.overrides.served_base_url
        if base_url is None:
            logger.error(
                "SIGHUP: %s has no base_url; keeping the running configuration", self.config_file
            )
            return
        for key in ("dumps", "out", "state_dir"):
            if getattr(config, key) != getattr(self.config, key):
                logger.warning(
                    "SIGHUP: %s changed in %s; restart the daemon to use it", key, self.config_file
                )
        self.config = config
        self.base_url = base_url
        builder.target = replace(builder.target, config=config, base_url=base_url)
        interval = self.overrides.interval or config.interval
        if interval != self.interval:
            self.interval = interval
            self._schedule("rescan", self._job_rescan, self.clock() + timedelta(seconds=interval))
        logger.info("SIGHUP: reloaded %s", self.config_file)
        self._build(None)

    def _job_failed(self, event: Any) -> None:
        logger.error("job %s failed: %r", event.job_id, event.exception)

    def _build(self, paths: Iterable[str] | None) -> BuildReport | None:
        builder = self._builder
        if builder is None:
            return None
        try:
            return self._build_with(builder, paths)
        finally:
            self._announce()

    def _build_with(self, builder: Builder, paths: Iterable[str] | None) -> BuildReport | None:
        problem = self._check_root(builder)
        self._note_root(problem)
        if problem is not None:
            return None
        started = time.perf_counter()
        now = self.clock()
        try:
            report = builder.build(now=now, paths=paths)
        except Exception as e:  # one failed build never stops the daemon
            problem = self._check_root(builder)
            if problem is not None:  # the root went while it was read: not a failure
                self._note_root(problem)
            else:
                self._failed(e)
            return None
        self._succeeded()
        ms = (time.perf_counter() - started) * 1000
        self._publisher.notify(pings_of(report.feeds))
        changed = [f for f in report.feeds if f.written]
        if changed or report.removed:
            feeds = ", ".join(f"{f.name} ({f.entries} entries)" for f in changed)
            logger.info("updated %s in %.0f ms", feeds or "the feed list", ms)
        self._report_rejections(report)
        self._report_warnings(report)
        self._report_future(report)
        self._schedule_future(report)
        if self._state is not None:
            status = status_of(report, now)
            status.update(pid=os.getpid(), serving=self.server_url, build_ms=round(ms, 1))
            self._write_status(self._state, status)
        return report

    def _write_status(self, state: Path, status: dict[str, Any]) -> None:
        try:
            write_status(state, status)
        except (FeedbridgeError, OSError) as e:
            if not self._status_failing:
                logger.warning("cannot write status: %s", e)
            self._status_failing = True
        else:
            self._status_failing = False

    # -- failures ---------------------------------------------------------------------------

    def _check_root(self, builder: Builder) -> str | None:
        def published() -> list[str]:
            try:
                return [name for name, (_, n, _) in builder.index.feed_state().items() if n]
            except (sqlite3.Error, ValueError):  # the build decides what a broken index means
                return []

        return root_problem(self.overrides.dumps, published)

    def _note_root(self, problem: str | None) -> None:
        """Log when the dumps root becomes unusable (once, not at every rescan or at each new
        symptom of the same outage) or usable again."""
        root = self.overrides.dumps
        with self._root_lock:
            before, self._root_problem = self._root_problem, problem
        if problem == before:
            return
        if problem is not None and before is not None:
            logger.debug("dumps root %s: %s", root, problem)
        elif problem is not None:
            logger.warning(
                "dumps root %s: %s; keeping every published feed as it is until it is back",
                root,
                problem,
            )
        else:
            logger.info("dumps root %s is back", root)

    def _failed(self, error: Exception) -> None:
        """Log the first failure of a streak, and retry after a longer wait each time."""
        self._failures += 1
        cap = max(RETRY_FIRST, self.interval)
        delay = backoff(self._failures - 1, first=RETRY_FIRST, cap=cap)
        if isinstance(error, FeedbridgeError):
            reason = str(error)
        else:
            reason = f"{type(error).__name__}: {error}"
        if self._failures == 1:
            bug = not isinstance(error, (OSError, sqlite3.Error))
            logger.error(
                "build failed: %s; retrying in %g s, then less often (every %g s at most)",
                reason,
                delay,
                cap,
                exc_info=error if bug else None,  # a bug keeps its traceback
            )
        else:
            logger.debug("build failed again (%d in a row): %s", self._failures, reason)
        self._schedule("retry", self._job_retry, self.clock() + timedelta(seconds=delay))

    def _succeeded(self) -> None:
        if not self._failures:
            return
        logger.info("build succeeded after %d failed attempts", self._failures)
        self._failures = 0
        if self._scheduler is not None and self._scheduler.get_job("retry") is not None:
            with contextlib.suppress(LookupError):
                self._scheduler.remove_job("retry")

    # -- reports ----------------------------------------------------------------------------

    def _report_rejections(self, report: BuildReport) -> None:
        """Each rejected dump once, not at every rescan; again only if it comes back."""
        current = {str(r) for r in report.rejected}
        for line in sorted(current - self._reported):
            logger.warning("rejected: %s", line)
        self._reported = current

    def _report_warnings(self, report: BuildReport) -> None:
        """What ``build`` prints as ``warning:`` (a root without source folders, a folder
        that cannot be read, root entries that cannot be sources): each once, again only if
        it comes back."""
        current = set(report.warnings)
        for line in sorted(current - self._warned):
            logger.warning("%s", line)
        self._warned = current

    def _report_future(self, report: BuildReport) -> None:
        """Each future-dated dump once, as ``build`` names them; again if its date changes."""
        current = {f"{d.path}: dated {d.published:%Y-%m-%dT%H:%M:%SZ}" for d in report.future}
        for line in sorted(current - self._future_reported):
            logger.info("future: %s, left out until then", line)
        self._future_reported = current

    def _schedule_future(self, report: BuildReport) -> None:
        if report.future:
            when = min(d.published for d in report.future)
            self._schedule("future", self._job_future, when)
            logger.debug("next future dump at %s", when)
        elif (
            self._scheduler is not None
            and not self._stop.is_set()
            and self._scheduler.get_job("future") is not None
        ):
            self._scheduler.remove_job("future")


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
