"""Optional HTTP server for OUT: WhiteNoise (static files) on waitress (WSGI server).

Both are well-kept libraries; nothing here speaks HTTP by hand.  WhiteNoise runs in
autorefresh mode so every request sees the file on disk as it is now: feeds change under it,
and its ETag and Last-Modified come from the file's size and mtime, which feedbridge keeps
unchanged when the bytes are unchanged.  It answers HEAD, 304 for If-None-Match and
If-Modified-Since, refuses paths outside OUT, and serves ``index.html`` for ``/``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from feedbridge.errors import ConfigError

logger = logging.getLogger(__name__)

#: Content types by file name, with the charset readers should not have to sniff.
MEDIA_TYPES = {
    "atom.xml": "application/atom+xml; charset=utf-8",
    "rss.xml": "application/rss+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
    ".opml": "text/x-opml",
    ".html": "text/html",
}
#: Archive pages (``NAME/archive/2024-05-1.xml`` and ``.json``): Atom and JSON Feed documents.
ARCHIVE_TYPES = {
    ".xml": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
}


def _is_archive(path: str) -> bool:
    return Path(path).parent.name == "archive"


#: Readers poll; let caches keep a feed for a minute, then revalidate (cheap: 304).
MAX_AGE = 60

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` -> (host, port); the host defaults to 127.0.0.1."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--serve {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def _not_found(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = b"404 Not Found\n"
    start_response(
        "404 Not Found",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def make_app(out: Path) -> WsgiApp:
    """The WSGI application that serves OUT."""
    from whitenoise import WhiteNoise

    class FeedFiles(WhiteNoise):  # type: ignore[misc]
        def add_mime_headers(self, headers: Any, path: str, url: str) -> None:
            # WhiteNoise quotes the charset it adds (charset="utf-8"); write it plainly.
            media_type = ARCHIVE_TYPES.get(Path(path).suffix, "") if _is_archive(path) else ""
            media_type = media_type or self.media_types.get_type(path)
            if "charset=" not in media_type and media_type.startswith("text/"):
                media_type += "; charset=utf-8"
            headers["Content-Type"] = media_type

    app: WsgiApp = FeedFiles(
        _not_found,
        root=str(out),
        autorefresh=True,
        index_file=True,
        mimetypes=MEDIA_TYPES,
        max_age=MAX_AGE,
        allow_all_origins=True,
    )
    return app


class Server:
    """waitress serving OUT in a background thread; ``close()`` stops it."""

    def __init__(self, out: Path, host: str, port: int) -> None:
        from waitress.server import create_server

        # Bind here, so a busy port is our error to report and our socket to close.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise ConfigError(f"cannot serve on {host}:{port}: {e.strerror or e}") from e
        self._server = create_server(
            make_app(out),
            sockets=[sock],
            threads=4,
            ident="feedbridge",
            clear_untrusted_proxy_headers=True,
        )
        port = sock.getsockname()[1]
        self.host = host
        self.port = int(port)
        self._thread = threading.Thread(target=self._run, name="feedbridge-http", daemon=True)

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # closed under it at shutdown
            self._server.run()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Close every connection and the listening socket in the server's own thread."""
        server = self._server

        def shut() -> None:
            for channel in list(server._map.values()):
                if channel is not server and channel is not server.trigger:
                    channel.close()
            server.close()

        if self._thread.is_alive():
            server.trigger.pull_trigger(shut)
            self._thread.join(timeout=5)
        else:
            server.close()
        server.task_dispatcher.shutdown()
