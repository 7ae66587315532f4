"""Run ``feedbridge run`` as a real subprocess, poll with deadlines, always stop it."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .helpers import target_args

#: What every server of OUT must answer (the embedded one and nginx with the shipped block).
CONTENT_TYPES = [
    ("/voa/atom.xml", "application/atom+xml; charset=utf-8"),
    ("/voa/rss.xml", "application/rss+xml; charset=utf-8"),
    ("/voa/feed.json", "application/feed+json; charset=utf-8"),
    ("/voa/archive/2024-11-1.xml", "application/atom+xml; charset=utf-8"),
    ("/voa/archive/2024-11-1.json", "application/feed+json; charset=utf-8"),
    ("/feeds.opml", "text/x-opml; charset=utf-8"),
    ("/", "text/html; charset=utf-8"),
]
#: Generous deadlines: these tests check behaviour; latency is measured in benchmarks/.
DEADLINE = 10.0


def wait_for(predicate: Callable[[], object], timeout: float = DEADLINE, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw request to 127.0.0.1 (the path is sent as written); (0, {}, b"") if refused."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except OSError:
        return 0, {}, b""
    finally:
        conn.close()


def feedbridge_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "feedbridge", *args]


def read(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return ""


class RunningDaemon:
    def __init__(self, dumps: Path, out: Path, state: Path, *extra: str) -> None:
        self.dumps, self.out, self.state = dumps, out, state
        self.log = state.parent / f"daemon-{id(self)}.log"
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            feedbridge_cmd("run", *target_args(dumps, out, state), *extra),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        started = time.time()

        def first_build_done() -> bool:
            status = state / "status.json"
            fresh = status.exists() and status.stat().st_mtime >= started - 1
            return (fresh and "watching " in self.output()) or self.proc.poll() is not None

        wait_for(first_build_done, what="the first build")
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return read(self.log)

    def feed(self, name: str, fmt: str = "atom.xml") -> str:
        return read(self.out / name / fmt)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired as e:
                self.proc.kill()
                self.proc.wait()
                self._log_file.close()
                raise AssertionError(f"no exit {timeout} s after {sig}:\n{self.output()}") from e
        self._log_file.close()
        return self.proc.returncode
