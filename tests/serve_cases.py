"""What every server of OUT must refuse or answer, planted in a built OUT (embedded and nginx)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urljoin

SECRET = b"outside OUT: must never be served"


def plant_hazards(out: Path, outside: Path) -> list[str]:
    """Files and links in OUT that no server may serve; returns their URL paths."""
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "index.html").write_bytes(SECRET)
    hidden = out / ".feedbridge"
    hidden.mkdir()
    (hidden / "index.sqlite3").write_bytes(SECRET)
    (out / "voa" / ".atom.xml.123.tmp").write_bytes(SECRET)
    (out / "voa" / "partial.tmp").write_bytes(SECRET)
    (out / ".hidden.html").write_bytes(SECRET)
    (out / "secret.txt").symlink_to(outside / "secret.txt")
    (out / "voa" / "up.xml").symlink_to(Path("..", "..", outside.name, "secret.txt"))
    (out / "elsewhere").symlink_to(outside, target_is_directory=True)
    (out / "state.xml").symlink_to(hidden / "index.sqlite3")
    (out / "voa" / "hidden-target.xml").symlink_to(out / "voa" / ".atom.xml.123.tmp")
    os.mkfifo(out / "fifo.xml")
    return [
        "/.feedbridge/index.sqlite3",
        "/.feedbridge/",
        "/voa/.atom.xml.123.tmp",
        "/voa/partial.tmp",
        "/.hidden.html",
        "/secret.txt",
        "/voa/up.xml",
        "/elsewhere/secret.txt",
        "/elsewhere/",
        "/elsewhere",
        "/state.xml",
        "/voa/hidden-target.xml",
        "/fifo.xml",
        "/voa/./atom.xml/../.././.feedbridge/index.sqlite3",
    ]


def plant_folder_index(out: Path) -> bytes:
    """A page per feed (as the pages of a build write it): OUT/voa/index.html."""
    page = "<!doctype html><title>VOA</title><h1>美国之音</h1>\n".encode()
    (out / "voa" / "index.html").write_bytes(page)
    return page


def redirect_target(port: int, path: str, location: str) -> str:
    """Where a redirect from ``path`` on 127.0.0.1:``port`` leads, as a browser resolves it."""
    return urljoin(f"http://127.0.0.1:{port}{path}", location)


class Slowloris:
    """``count`` connections that send a request head one byte at a time, never finishing it."""

    def __init__(self, port: int, count: int, interval: float = 1.0) -> None:
        self.port, self.count, self.interval = port, count, interval
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)

    def _drip(self) -> None:
        while not self._stop.wait(self.interval):
            for sock in self.sockets:
                try:
                    sock.send(b"X")
                except OSError:
                    continue

    def open(self) -> None:
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.setblocking(False)
            sock.send(b"GET /voa/atom.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            self.sockets.append(sock)
        self._thread.start()

    def closed(self, sock: socket.socket) -> bool:
        """Whether the server closed this connection."""
        try:
            return sock.recv(1024) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


@contextmanager
def slowloris(port: int, count: int) -> Iterator[Slowloris]:
    attack = Slowloris(port, count)
    try:
        attack.open()
        time.sleep(0.5)  # let the server take them all in before the honest client comes
        yield attack
    finally:
        attack.close()
