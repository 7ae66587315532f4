"""The WebSub publisher: tell hubs which feed documents changed, in the background.

After a build in which a feed's files changed, each of the feed's hubs gets one
``hub.mode=publish`` POST per changed document (form-encoded; ``hub.url`` is the name the
common hubs read -- Google's, Superfeedr, websub.rocks -- and ``hub.topic`` the name others,
such as flask-websub's hub, read; both carry the document's URL).  The hub then fetches the
document and pushes it to its subscribers.

- Never in the way of a build: one thread per hub sends, so a hub that hangs delays no other
  hub and no build; a failure is retried with exponential backoff (``BACKOFF`` seconds,
  doubling, ``ATTEMPTS`` attempts) and logged once, when it first fails.
- Never a ping when nothing changed: pings come from the documents a build wrote.
- The last ping per hub (time, URL, result) and the pings still pending are kept in
  ``pings.json`` in the state folder, written atomically; ``feedbridge status`` shows them, and
  a publisher started later (the next ``build``, the daemon) sends the pending ones.

HTTP goes through the standard library (urllib): one form POST needs no client library, and
none is in the runtime dependencies.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from feedbridge import __version__
from feedbridge.config import Config
from feedbridge.errors import FeedbridgeError
from feedbridge.model import FeedResult
from feedbridge.publish import write_atomic

logger = logging.getLogger(__name__)

PINGS_NAME = "pings.json"
#: Attempts per ping, and the first retry's delay in seconds (doubling after each failure).
ATTEMPTS = 8
BACKOFF = 1.0
#: Seconds a hub may take to answer one ping.
TIMEOUT = 10.0
#: Seconds ``feedbridge build`` waits for its pings before it exits (the rest stay pending).
BUILD_WAIT = 10.0
#: Seconds the daemon waits for pending pings when it stops.
STOP_WAIT = 2.0
FEED_DOCUMENTS = ("atom.xml", "rss.xml", "feed.json")


class PingError(FeedbridgeError):
    """A hub did not accept a publish ping."""


Send = Callable[[str, str, float], str]
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# -- pure ------------------------------------------------------------------------------------


def pings_of(feeds: Iterable[FeedResult]) -> dict[str, list[str]]:
    """Hub -> URLs of the changed documents it should hear about (sorted, no duplicates)."""
    pings: dict[str, set[str]] = {}
    for feed in feeds:
        for hub in feed.hubs:
            if feed.topics:
                pings.setdefault(hub, set()).update(feed.topics)
    return {hub: sorted(urls) for hub, urls in sorted(pings.items())}


def publish_form(topic: str) -> bytes:
    return urlencode([("hub.mode", "publish"), ("hub.url", topic), ("hub.topic", topic)]).encode()


def hubs_of(config: Config, feed: str) -> tuple[str, ...]:
    """The hubs of a feed by name: its own ``hub``, else the top-level one (auto feeds)."""
    for spec in config.feeds:
        if spec.name == feed:
            return spec.hubs
    return config.hubs


def link_header(config: Config, base_url: str, url_path: str) -> str | None:
    """The HTTP ``Link`` header (WebSub discovery) of a feed document, None for other files.

    ``url_path`` is the request path (``/NAME/atom.xml``); the self link is the document's
    public URL under ``base_url``, the topic its hub knows it by.
    """
    name, _, document = url_path.lstrip("/").partition("/")
    if document not in FEED_DOCUMENTS or not name:
        return None
    hubs = hubs_of(config, unquote(name))
    if not hubs:
        return None
    links = [f'<{hub}>; rel="hub"' for hub in hubs]
    links.append(f'<{base_url}{url_path.lstrip("/")}>; rel="self"')
    return ", ".join(links)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- I/O -------------------------------------------------------------------------------------


def post_publish(hub: str, topic: str, timeout: float) -> str:
    """POST one publish ping; the hub's answer (``HTTP 202``), or PingError."""
    import urllib.error  # here: a build that pings nobody does not load an HTTP client
    import urllib.request

    request = urllib.request.Request(
        hub,
        data=publish_form(topic),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": f"feedbridge/{__version__}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as e:
        raise PingError(f"HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise PingError(str(reason)) from e
    if not 200 <= status < 300:
        raise PingError(f"HTTP {status}")
    return f"HTTP {status}"


def read_pings(state_dir: Path) -> dict[str, Any]:
    """``pings.json``: ``{"hubs": {hub: {time, url, result}}, "pending": [[hub, url], ...]}``."""
    try:
        data = json.loads((state_dir / PINGS_NAME).read_text("utf-8"))
    except (FileNotFoundError, ValueError, OSError):
        return {"hubs": {}, "pending": []}
    if not isinstance(data, dict):
        return {"hubs": {}, "pending": []}
    hubs = data.get("hubs") if isinstance(data.get("hubs"), dict) else {}
    pending = [
        (p[0], p[1])
        for p in data.get("pending") or []
        if isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
    ]
    return {"hubs": hubs, "pending": pending}


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    topic: str = field(compare=False)
    attempt: int = field(default=1, compare=False)


class _HubQueue:
    """The pings of one hub, sent in order of due time by one thread."""

    def __init__(self, publisher: Publisher, hub: str) -> None:
        self.publisher = publisher
        self.hub = hub
        self.cond = threading.Condition()
        self.jobs: list[_Job] = []
        self.queued: set[str] = set()
        self.busy = False
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="feedbridge-websub", daemon=True)
        self.thread.start()

    def add(self, topic: str, seq: int) -> None:
        with self.cond:
            if topic in self.queued:  # already waiting: the hub fetches the newest bytes
                return
            self.queued.add(topic)
            heapq.heappush(self.jobs, _Job(time.monotonic(), seq, topic))
            self.cond.notify_all()

    def idle(self) -> bool:
        return not self.jobs and not self.busy

    def pending(self) -> list[str]:
        with self.cond:
            return sorted(self.queued)

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def _next(self) -> _Job | None:
        with self.cond:
            while not self.stopping:
                if self.jobs:
                    wait = self.jobs[0].due - time.monotonic()
                    if wait <= 0:
                        self.busy = True
                        return heapq.heappop(self.jobs)
                    self.cond.wait(wait)
                else:
                    self.cond.wait()
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                retry = self.publisher._attempt(self.hub, job)
            except Exception:  # a bug here must not kill the thread silently
                logger.exception("websub: %s: unexpected error", self.hub)
                retry = None
            with self.cond:
                if retry is not None and retry.due < math.inf and not self.stopping:
                    heapq.heappush(self.jobs, retry)
                elif retry is None:
                    self.queued.discard(job.topic)
            if retry is None:
                self.publisher._save()  # no longer pending
            with self.cond:
                self.busy = False
                self.cond.notify_all()


class Publisher:
    """Sends publish pings to hubs in the background.  ``notify`` never blocks or raises."""

    def __init__(
        self,
        state_dir: Path | None,
        *,
        attempts: int = ATTEMPTS,
        keep_failed: bool = False,
        backoff: float = BACKOFF,
        timeout: float = TIMEOUT,
        send: Send = post_publish,
        clock: Clock = _utc_now,
    ) -> None:
        self.state_dir = state_dir
        self.attempts = attempts
        #: After the last attempt, keep a failed ping pending for the next publisher (cron).
        self.keep_failed = keep_failed
        self.backoff = backoff
        self.timeout = timeout
        self.send = send
        self.clock = clock
        self._lock = threading.Lock()
        self._queues: dict[str, _HubQueue] = {}
        self._seq = 0
        saved = read_pings(state_dir) if state_dir else {"hubs": {}, "pending": []}
        self._last: dict[str, Any] = dict(saved["hubs"])
        resumed: dict[str, list[str]] = {}
        for hub, topic in saved["pending"]:
            resumed.setdefault(hub, []).append(topic)
        if resumed:
            logger.info("websub: resending %d pending pings", len(saved["pending"]))
            self.notify(resumed)

    def notify(self, pings: Mapping[str, Sequence[str]]) -> None:
        """Queue a ping of each URL to its hub (see ``pings_of``)."""
        with self._lock:
            for hub, topics in pings.items():
                queue = self._queues.get(hub)
                if queue is None:
                    queue = self._queues[hub] = _HubQueue(self, hub)
                for topic in topics:
                    self._seq += 1
                    queue.add(topic, self._seq)
        if pings:
            self._save()

    def wait(self, timeout: float) -> bool:
        """Wait until every queued ping was accepted or given up; False if time ran out."""
        end = time.monotonic() + timeout
        for queue in list(self._queues.values()):
            with queue.cond:
                while not queue.idle():
                    left = end - time.monotonic()
                    if left <= 0:
                        return False
                    queue.cond.wait(left)
        return True

    def close(self, timeout: float = 0.0) -> None:
        """Wait up to ``timeout`` seconds, stop the threads, and keep what is left as pending."""
        self.wait(timeout)
        queues = list(self._queues.values())
        if not queues:
            return
        for queue in queues:
            queue.stop()
        for queue in queues:
            queue.thread.join(timeout=self.timeout + 1)
        left = sum(len(q.pending()) for q in queues)
        if left:
            logger.info("websub: %d pings pending; the next build or daemon sends them", left)
        self._save()

    def last(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._last))  # type: ignore[no-any-return]

    # -- in a hub's thread --------------------------------------------------------------------

    def _attempt(self, hub: str, job: _Job) -> _Job | None:
        """Send one ping; the retry to schedule, or None when done (accepted or given up)."""
        try:
            answer = self.send(hub, job.topic, self.timeout)
        except PingError as e:
            return self._failed(hub, job, str(e))
        if job.attempt > 1:
            logger.info("websub: %s accepted %s at attempt %d", hub, job.topic, job.attempt)
        else:
            logger.debug("websub: %s accepted %s (%s)", hub, job.topic, answer)
        self._record(hub, job.topic, f"ok: {answer}", job.attempt)
        return None

    def _failed(self, hub: str, job: _Job, reason: str) -> _Job | None:
        if job.attempt >= self.attempts and self.keep_failed:
            logger.warning(
                "websub: %s: ping for %s failed: %s; the next run sends it", hub, job.topic, reason
            )
            self._record(hub, job.topic, f"failed: {reason} (pending)", job.attempt)
            return _Job(math.inf, job.seq, job.topic, job.attempt)
        if job.attempt >= self.attempts:
            logger.error(
                "websub: %s: gave up on %s after %d attempts: %s",
                hub, job.topic, job.attempt, reason,
            )  # fmt: skip
            self._record(hub, job.topic, f"failed: {reason} (gave up)", job.attempt)
            return None
        delay = self.backoff * 2 ** (job.attempt - 1)
        if job.attempt == 1:
            logger.warning(
                "websub: %s: ping for %s failed: %s; retrying with backoff", hub, job.topic, reason
            )
        self._record(hub, job.topic, f"failed: {reason} (retrying)", job.attempt)
        return _Job(time.monotonic() + delay, job.seq, job.topic, job.attempt + 1)

    def _record(self, hub: str, topic: str, result: str, attempt: int) -> None:
        with self._lock:
            self._last[hub] = {
                "time": _iso(self.clock()),
                "url": topic,
                "result": result,
                "attempt": attempt,
            }
        self._save()

    def _save(self) -> None:
        if self.state_dir is None:
            return
        with self._lock:
            pending = [[hub, t] for hub, q in sorted(self._queues.items()) for t in q.pending()]
            data = {"hubs": self._last, "pending": pending}
            text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
            try:
                write_atomic(self.state_dir / PINGS_NAME, text.encode("utf-8"))
            except FeedbridgeError as e:
                logger.warning("websub: cannot record pings: %s", e)
