"""Optional HTTP server for OUT: WhiteNoise (static files) on waitress (WSGI server).

Both are well-kept libraries; nothing here speaks HTTP by hand.  WhiteNoise runs in
autorefresh mode so every request sees the file on disk as it is now: feeds change under it,
and its ETag and Last-Modified come from the file's size and mtime, which feedbridge keeps
unchanged when the bytes are unchanged.  It answers HEAD, 304 for If-None-Match and
If-Modified-Since, serves ``NAME/index.html`` for ``NAME/`` and redirects ``NAME`` there.

What it serves: only visible regular files whose real path is inside OUT (no dot segment in
the URL or in the real path, no ``*.tmp``, no symlink out of OUT, no FIFO or device).

How it stays up (waitress reads every request whole in its event loop before a worker sees
it, so slow clients cost a socket, never a thread):

- a connection that is not being answered must deliver a whole request within
  ``request_timeout`` seconds of connecting or of its last response (waitress' own
  ``channel_timeout`` only counts inactivity, which one byte a second never reaches);
- at ``connection_limit`` a new connection is still accepted, and the connection that has
  been waiting longest for its request is closed instead (waitress would stop accepting);
- the event loop uses ``poll``, which has no 1024-descriptor ceiling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.headers import Headers

from feedbridge.archive import ARCHIVE_DIR
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
    return Path(path).parent.name == ARCHIVE_DIR


#: Readers poll; let caches keep a feed for a minute, then revalidate (cheap: 304).
MAX_AGE = 60
#: Seconds a connection may take to deliver a whole request (head and body).
REQUEST_TIMEOUT = 10.0
#: Seconds a response may wait for its reader to take any byte.
SEND_TIMEOUT = 30
#: Open connections before the longest-waiting one is closed for a new one.
CONNECTION_LIMIT = 1000
#: Descriptors kept free for the rest of the process (index, watcher, files being served).
RESERVED_FDS = 128
#: A static server reads no bodies; a request head fits in nginx's default buffers.
MAX_HEADER_BYTES = 32 * 1024
MAX_BODY_BYTES = 64 * 1024

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` -> (host, port); the host defaults to 127.0.0.1."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--serve {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


def served_base_url(host: str, port: int) -> str:
    """The URL readers on this machine reach ``host:port`` at (a wildcard means loopback)."""
    if port == 0:
        raise ConfigError(
            "--serve with port 0 has no address to link to: set --base-url or base_url"
        )
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_visible(url_path: str) -> bool:
    """No dot segment (``.``, ``..``, ``.hidden``), no empty segment, no temporary file."""
    segments = url_path.removeprefix("/").split("/")
    if segments[-1] == "":  # a folder, NAME/ (or the root)
        segments.pop()
    hidden = any(not s or s.startswith(".") for s in segments)
    return not hidden and not (segments and segments[-1].endswith(".tmp"))


def real_file(root: str, path: str) -> str:
    """``path``'s real path if it is a visible regular file inside ``root``, else an error.

    Raises whitenoise's ``IsDirectoryError`` for a folder inside ``root`` (so it can redirect
    ``NAME`` to ``NAME/``) and ``MissingFileError`` for everything that is not to be served.
    """
    from whitenoise.responders import IsDirectoryError, MissingFileError

    try:
        real_root = os.path.realpath(root)
        real = os.path.realpath(path)
        inside = os.path.commonpath((real, real_root)) == real_root
        mode = Path(real).stat().st_mode
    except (OSError, ValueError):
        raise MissingFileError(path) from None
    relative = os.path.relpath(real, real_root).replace(os.sep, "/")
    if not inside or not is_visible("" if relative == "." else relative):
        raise MissingFileError(path)
    if stat.S_ISDIR(mode):
        raise IsDirectoryError(path)
    if not stat.S_ISREG(mode):
        raise MissingFileError(path)
    return real


def _not_found(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = b"404 Not Found\n"
    start_response(
        "404 Not Found",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


#: The ``Link`` header of a request path (WebSub discovery), None for none.
LinkHeader = Callable[[str], str | None]


def make_app(out: Path, link: LinkHeader | None = None) -> WsgiApp:
    """The WSGI application that serves OUT (``.gz`` twins to clients that accept gzip)."""

    def add_link(headers: Any, path: str, url: str) -> None:
        value = link(url) if link else None
        if value:
            headers["Link"] = value

    from whitenoise import WhiteNoise
    from whitenoise.responders import MissingFileError, StaticFile

    class FeedFiles(WhiteNoise):  # type: ignore[misc]
        def find_file(self, url: str) -> Any:
            return super().find_file(url) if is_visible(url) else None

        def get_static_file(self, path: str, url: str, stat_cache: Any = None) -> Any:
            # Every file WhiteNoise would open passes here: serve the checked real path, and
            # offer a .gz/.br twin only when it passes the same check.
            real = real_file(str(out), path)
            encodings = {}
            for encoding, suffix in (("gzip", ".gz"), ("br", ".br")):
                with contextlib.suppress(MissingFileError):
                    encodings[encoding] = real_file(str(out), path + suffix)
            headers = Headers([])
            self.add_mime_headers(headers, path, url)
            self.add_cache_headers(headers, path, url)
            if self.allow_all_origins:
                headers["Access-Control-Allow-Origin"] = "*"
            if self.add_headers_function:
                self.add_headers_function(headers, path, url)
            return StaticFile(real, headers.items(), encodings=encodings)

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
        add_headers_function=add_link if link else None,
    )
    return app


def connection_limit(wanted: int = CONNECTION_LIMIT) -> int:
    """``wanted``, or fewer if the process may not open that many descriptors."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return min(wanted, max(8, soft - RESERVED_FDS))


def _eviction_order(channel: Any) -> tuple[bool, float]:
    """Waiting for a request (by how long) before stalled on output (by last progress)."""
    stalled = bool(channel.total_outbufs_len)
    return stalled, channel.last_activity if stalled else channel.waiting_since


def _server_classes() -> tuple[type, type]:
    """waitress' TCP server and channel, with a request deadline and eviction at the limit."""
    from waitress.channel import HTTPChannel
    from waitress.server import TcpWSGIServer

    class Channel(HTTPChannel):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            #: Since when this connection owes us a request (connect, or last response).
            self.waiting_since: float = self.creation_time

        def busy(self) -> bool:
            return bool(self.requests or self.total_outbufs_len)

        def service(self) -> None:
            super().service()
            self.waiting_since = time.time()

    class DeadlineServer(TcpWSGIServer):  # type: ignore[misc]
        channel_class = Channel
        request_timeout = REQUEST_TIMEOUT
        next_channel_cleanup = 0.0

        def readable(self) -> bool:
            # As waitress, minus its stop-accepting overflow state: handle_accept evicts.
            now = time.time()
            if now >= self.next_channel_cleanup:
                self.next_channel_cleanup = now + self.adj.cleanup_interval
                self.maintenance(now)
            return bool(self.accepting)

        def maintenance(self, now: float) -> None:
            super().maintenance(now)  # waitress: inactivity (a reader taking no bytes)
            for channel in list(self.active_channels.values()):
                if channel.busy():
                    channel.waiting_since = now
                elif now - channel.waiting_since > self.request_timeout:
                    channel.will_close = True

        def handle_accept(self) -> None:
            if len(self.active_channels) >= self.adj.connection_limit and not self._evict():
                with contextlib.suppress(OSError):
                    accepted = self.accept()
                    if accepted is not None:
                        accepted[0].close()
                return
            super().handle_accept()

        def _evict(self) -> bool:
            """Make room: close (on the loop's next turn) the connection waiting longest for
            its request, else the one whose reader has taken no bytes for longest.

            A connection whose request a worker is answering is never closed.
            """
            idle = [c for c in self.active_channels.values() if not c.will_close and not c.requests]
            if not idle:
                return False
            min(idle, key=_eviction_order).will_close = True
            return True

    return DeadlineServer, Channel


class Server:
    """waitress serving OUT in a background thread; ``close()`` stops it."""

    def __init__(
        self,
        out: Path,
        host: str,
        port: int,
        *,
        link: LinkHeader | None = None,
        max_connections: int = CONNECTION_LIMIT,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        from waitress.adjustments import Adjustments

        # Bind here, so a busy port is our error to report and our socket to close.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise ConfigError(f"cannot serve on {host}:{port}: {e.strerror or e}") from e
        adj = Adjustments(
            sockets=[sock],
            threads=4,
            ident="feedbridge",
            clear_untrusted_proxy_headers=True,
            connection_limit=connection_limit(max_connections),
            channel_timeout=SEND_TIMEOUT,
            cleanup_interval=1,
            asyncore_use_poll=True,
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=MAX_BODY_BYTES,
        )
        server_class, _channel = _server_classes()
        self._server = server_class(
            make_app(out, link),
            map={},
            _sock=sock,
            adj=adj,
            bind_socket=False,
            sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()),
        )
        self._server.request_timeout = request_timeout
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
                    channel.handle_close()  # also closes the files a response was sending
            server.close()

        if self._thread.is_alive():
            try:
                server.trigger.pull_trigger(shut)
            except OSError:  # the loop's wake-up pipe is gone: the loop ended on its own
                logger.debug("server loop already stopped", exc_info=True)
            self._thread.join(timeout=5)
        if not self._thread.is_alive():
            with contextlib.suppress(OSError):
                server.close()
        server.task_dispatcher.shutdown()
