"""``feedbridge run``: keep the feeds current.  The only APScheduler user.

- A full rescan every ``interval`` seconds (coalesced, one at a time, with a misfire grace).
- File events (watchfiles, inotify underneath) queue the changed paths; a ``changes`` job
  rebuilds only what they touch, once each file has been still for ``SETTLE`` seconds, so a
  file is never published half-written by a writer that is still at it.
- A ``future`` job wakes at the time of the next future-dated dump and publishes it.
- SIGTERM/SIGINT finish the build in progress and exit; SIGHUP reloads the configuration
  (an invalid one is logged and the running one kept).

Every job runs in one worker thread, so builds never overlap and the index is only ever
touched by that thread.
"""

from __future__ import annotations

import logging
import signal
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
from feedbridge.config import Config, load_config
from feedbridge.errors import ConfigError, FeedbridgeError
from feedbridge.model import BuildReport
from feedbridge.state import write_status
from feedbridge.websub import STOP_WAIT, Publisher, pings_of

logger = logging.getLogger(__name__)

#: A changed file is read once it has been unchanged this long (seconds).
SETTLE = 0.25
#: watchfiles: wait this long for more changes before yielding a batch (ms).
DEBOUNCE_MS = 50
STEP_MS = 10
#: Queued instances allowed for a one-off job (they still run one at a time).
ONE_OFF_INSTANCES = 16
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
        #: Held while a job runs; shutdown takes it to let the build in progress finish.
        self._busy = threading.Lock()
        self._watch_stop = threading.Event()
        #: Changed paths waiting to be read, with the (monotonic) time of their last event.
        self._pending: dict[str, float] = {}
        self._full = False
        self._pending_lock = threading.Lock()
        self._reported: set[str] = set()
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
        from apscheduler.events import EVENT_JOB_ERROR
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        o.out.mkdir(parents=True, exist_ok=True)
        server = self._start_server()
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self._scheduler.add_listener(self._job_failed, EVENT_JOB_ERROR)
        self._scheduler.add_job(
            self._job_rescan,
            "interval",
            seconds=self.interval,
            id="rescan",
            next_run_time=self.clock(),
            misfire_grace_time=max(1, int(self.interval)),
        )
        watcher = threading.Thread(target=self._watch, name="feedbridge-watch", daemon=True)
        try:
            self._scheduler.start()
            watcher.start()
            logger.info("watching %s, writing %s (pid %d)", o.dumps, o.out, _pid())
            while not self._stop.wait(0.2):
                pass
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
        self.server_url = server.url
        logger.info("serving %s -- subscribe to %sNAME/atom.xml", server.url, server.url)
        return server

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
        self._schedule("reload", self._job_reload, self.clock())

    # -- file events ------------------------------------------------------------------------

    def _watch(self) -> None:
        import watchfiles

        root = self.overrides.dumps
        try:
            for changes in watchfiles.watch(
                root,
                watch_filter=None,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=self._watch_stop,
                raise_interrupt=False,
                rust_timeout=1000,
            ):
                self.queue(_relative(root, (path for _change, path in changes)))
        except Exception:  # the periodic rescan still keeps the feeds current
            logger.exception("file watching stopped; feeds are kept current by rescans only")

    def queue(self, changes: tuple[set[str], bool]) -> None:
        """Queue changed paths (relative to the dumps root); ``full`` asks for a rescan."""
        paths, full = changes
        if not paths and not full:
            return
        now = time.monotonic()
        with self._pending_lock:
            self._pending.update(dict.fromkeys(paths, now))
            self._full = self._full or full
        self._schedule("changes", self._job_changes, self.clock())

    def _schedule(self, job_id: str, func: Callable[[], None], when: datetime) -> None:
        if self._scheduler is None or self._stop.is_set():
            return
        # One-off jobs may be scheduled again while an instance runs (a SIGHUP during a
        # reload): the one worker thread runs them in turn, none is dropped.
        self._scheduler.add_job(
            func,
            "date",
            run_date=when,
            id=job_id,
            replace_existing=True,
            misfire_grace_time=None,
            max_instances=ONE_OFF_INSTANCES,
        )

    def _settled(self) -> tuple[set[str] | None, float | None]:
        """Take the pending paths that had no event for SETTLE seconds.

        Settling goes by our own clock, not by file mtimes, which a copy or a skewed clock can
        put anywhere.  Returns (paths to build, or None for a full rescan; seconds until the
        next of the rest settles).
        """
        now = time.monotonic()
        with self._pending_lock:
            if self._full:
                self._full = False
                self._pending.clear()
                return None, None
            ready = {rel for rel, seen in self._pending.items() if now - seen >= SETTLE}
            for rel in ready:
                del self._pending[rel]
            wait = min((SETTLE - (now - seen) for seen in self._pending.values()), default=None)
            return ready, wait

    # -- jobs (all in the one worker thread) ------------------------------------------------

    def _job_changes(self) -> None:
        with self._busy:
            if not self._stop.is_set():
                self._changes()

    def _job_rescan(self) -> None:
        with self._busy:
            if not self._stop.is_set():
                self._build(None)

    def _job_future(self) -> None:
        with self._busy:
            if not self._stop.is_set():
                self._build([])

    def _job_reload(self) -> None:
        with self._busy:
            if not self._stop.is_set():
                self._reload()

    def _changes(self) -> None:
        paths, wait = self._settled()
        if paths is None or paths:
            self._build(paths)
        builder = self._builder
        if builder is not None and builder.unsettled:
            now = time.monotonic()
            with self._pending_lock:
                self._pending.update(dict.fromkeys(builder.unsettled, now))
            wait = SETTLE if wait is None else min(wait, SETTLE)
        with self._pending_lock:
            more = bool(self._pending) or self._full
        if more:
            delay = wait if wait is not None else 0.0
            self._schedule(
                "changes", self._job_changes, self.clock() + timedelta(seconds=max(delay, 0.01))
            )

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
        base_url = self.overrides.base_url or config.base_url
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
            self._scheduler.reschedule_job("rescan", trigger="interval", seconds=interval)
        logger.info("SIGHUP: reloaded %s", self.config_file)
        self._build(None)

    def _job_failed(self, event: Any) -> None:
        logger.error("job %s failed: %r", event.job_id, event.exception)

    def _build(self, paths: Iterable[str] | None) -> BuildReport | None:
        builder = self._builder
        if builder is None:
            return None
        started = time.perf_counter()
        now = self.clock()
        try:
            report = builder.build(now=now, paths=paths)
        except FeedbridgeError as e:
            logger.error("build failed: %s", e)
            return None
        ms = (time.perf_counter() - started) * 1000
        self._publisher.notify(pings_of(report.feeds))
        changed = [f for f in report.feeds if f.written]
        if changed or report.removed:
            feeds = ", ".join(f"{f.name} ({f.entries} entries)" for f in changed)
            logger.info("updated %s in %.0f ms", feeds or "the feed list", ms)
        self._report_rejections(report)
        self._schedule_future(report)
        if self._state is not None:
            status = status_of(report, now)
            status.update(pid=_pid(), serving=self.server_url, build_ms=round(ms, 1))
            try:
                write_status(self._state, status)
            except FeedbridgeError as e:
                logger.warning("cannot write status: %s", e)
        return report

    def _report_rejections(self, report: BuildReport) -> None:
        """Each rejected dump once, not at every rescan; again only if it comes back."""
        current = {str(r) for r in report.rejected}
        for line in sorted(current - self._reported):
            logger.warning("rejected: %s", line)
        self._reported = current

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


def _relative(root: Path, paths: Iterable[str]) -> tuple[set[str], bool]:
    """Changed absolute paths -> (``source/name`` paths, whether a rescan is needed).

    A change directly under the root (a source folder created, removed or renamed) needs a
    rescan; deeper changes than ``source/name`` are not dumps.
    """
    rels: set[str] = set()
    full = False
    prefix = str(root).rstrip("/") + "/"
    for path in paths:
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        if len(parts) == 1 and not parts[0].startswith("."):
            full = True
        elif len(parts) == 2 and not parts[0].startswith("."):
            rels.add("/".join(parts))
    return rels, full


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _pid() -> int:
    import os

    return os.getpid()
