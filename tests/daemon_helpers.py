"""Run ``feedbridge run`` as a real subprocess, poll with deadlines, always stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .conftest import BASE_URL

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
            feedbridge_cmd(
                "run",
                "--dumps",
                str(dumps),
                "--out",
                str(out),
                "--base-url",
                BASE_URL,
                "--state",
                str(state),
                *extra,
            ),
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
