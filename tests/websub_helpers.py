"""A real WebSub hub and a real subscriber on 127.0.0.1, for the push tests.

Both are flask-websub (PyPI): its hub runs its work as celery tasks; here celery runs them
eagerly (``task_always_eager``), inline in the request that asks for them, so no broker or
worker process is needed.  The servers are werkzeug's threaded ones: the hub's request that
verifies a subscription calls back into the subscriber while the subscriber waits for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .daemon_helpers import free_port


@dataclass
class Notification:
    topic: str
    body: bytes
    at: float


@dataclass
class Hub:
    url: str
    #: Every form the hub endpoint received with hub.mode=publish, in order.
    publishes: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Subscriber:
    base: str
    subscriber: Any
    app: Any
    notifications: list[Notification] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)

    def subscribe(self, topic: str, hub: str) -> None:
        """Subscribe and wait until the hub has verified the intent (it does so inline)."""
        confirmed = threading.Event()
        self.subscriber.add_success_handler(lambda *_: confirmed.set())
        with self.app.app_context():
            self.subscriber.subscribe(topic_url=topic, hub_url=hub, lease_seconds=3600)
        assert confirmed.wait(10), "the hub did not verify the subscription"


@contextmanager
def _serve(app: Any, port: int) -> Iterator[int]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def real_hub(tmp: Path, port: int | None = None) -> Iterator[Hub]:
    from celery import Celery
    from flask import Flask, request
    from flask_websub.hub import Hub as WebSubHub
    from flask_websub.hub import SQLite3HubStorage

    app = Flask("hub")
    app.config["PUBLISH_SUPPORTED"] = True
    celery = Celery("hub", broker="memory://", backend="cache+memory://")
    celery.conf.update(task_always_eager=True, task_eager_propagates=False)
    hub = WebSubHub(SQLite3HubStorage(str(tmp / "hub.sqlite3")), celery, **app.config)
    app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))
    record = Hub(url="")

    @app.before_request
    def _seen() -> None:
        if request.method == "POST" and request.form.get("hub.mode") == "publish":
            record.publishes.append(dict(request.form))

    with _serve(app, port or free_port()) as bound:
        record.url = f"http://127.0.0.1:{bound}/hub"
        yield record


@contextmanager
def real_subscriber(tmp: Path) -> Iterator[Subscriber]:
    from flask import Flask
    from flask_websub.subscriber import (
        SQLite3SubscriberStorage,
        SQLite3TempSubscriberStorage,
    )
    from flask_websub.subscriber import Subscriber as WebSubSubscriber

    port = free_port()
    app = Flask("subscriber")
    app.config["SERVER_NAME"] = f"127.0.0.1:{port}"
    sub = WebSubSubscriber(
        SQLite3SubscriberStorage(str(tmp / "sub.sqlite3")),
        SQLite3TempSubscriberStorage(str(tmp / "sub-temp.sqlite3")),
    )
    app.register_blueprint(sub.build_blueprint(url_prefix="/callbacks"))
    record = Subscriber(base=f"http://127.0.0.1:{port}", subscriber=sub, app=app)

    @sub.add_listener
    def _notified(topic: str, callback_id: str, body: bytes) -> None:
        record.notifications.append(Notification(topic, body, time.monotonic()))
        record.event.set()

    with _serve(app, port):
        yield record


class _Failing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.bodies.append(self.rfile.read(length))  # type: ignore[attr-defined]
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def failing_hub() -> Iterator[tuple[str, list[bytes]]]:
    """A hub that answers 500 to everything; yields its URL and the bodies it got."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    server.bodies = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server.bodies  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def down_hub() -> str:
    """The URL of a hub that is down: a port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/hub"
