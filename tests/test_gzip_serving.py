"""The ``.gz`` twins reach readers: through the shipped nginx block and through ``--serve``.

A reader that accepts gzip gets the twin (``Content-Encoding: gzip``), which decompresses to
exactly the plain file; ETag and 304 work for both; a reader that does not gets the plain file.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedbridge.config import Config
from feedbridge.serve import Server

from .conftest import EXAMPLES
from .daemon_helpers import http_request
from .helpers import build
from .test_deploy import nginx  # noqa: F401 - the fixture that runs the shipped block

pytestmark = pytest.mark.slow

DOCUMENTS = ["/voa/atom.xml", "/voa/rss.xml", "/voa/feed.json", "/feeds.opml", "/"]
GZIP = {"Accept-Encoding": "gzip"}
#: As the nginx fixture builds: feeds of two entries, the older ones on archive pages.
SMALL = Config(limit=2)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    out = tmp_path / "out"
    build(EXAMPLES, out, SMALL)
    server = Server(out, "127.0.0.1", 0)
    server.start()
    try:
        yield server.port, out
    finally:
        server.close()


@pytest.fixture(params=["nginx", "embedded"])
def served(request: pytest.FixtureRequest) -> tuple[int, Path]:
    port_out: tuple[int, Path] = request.getfixturevalue(request.param)
    return port_out


def _name(path: str) -> str:
    return path.strip("/") or "index.html"


def _file(out: Path, path: str) -> bytes:
    return (out / _name(path)).read_bytes()


@pytest.mark.parametrize("path", DOCUMENTS)
def test_gzip_readers_get_the_twin(served: tuple[int, Path], path: str) -> None:
    port, out = served
    status, headers, body = http_request(port, "GET", path, GZIP)
    assert status == 200
    assert headers.get("content-encoding") == "gzip"
    assert "accept-encoding" in headers.get("vary", "").lower()
    assert body == (out / (_name(path) + ".gz")).read_bytes()
    assert gzip.decompress(body) == _file(out, path)
    plain_status, plain_headers, plain = http_request(port, "GET", path)
    assert plain_status == 200 and "content-encoding" not in plain_headers
    assert plain == _file(out, path)
    assert plain_headers["content-type"] == headers["content-type"]
    # nginx gives the twin its own ETag; WhiteNoise reuses the plain file's, which stays a true
    # validator because the twin changes exactly when the file does (Vary keeps caches apart).


@pytest.mark.parametrize("accept", [{}, GZIP])
def test_etag_and_304_for_both(served: tuple[int, Path], accept: dict[str, str]) -> None:
    port, out = served
    _, headers, _ = http_request(port, "GET", "/voa/atom.xml", accept)
    etag, modified = headers["etag"], headers["last-modified"]
    build(EXAMPLES, out, SMALL)  # changes no byte
    again = {**accept, "If-None-Match": etag}
    status, _, body = http_request(port, "GET", "/voa/atom.xml", again)
    assert status == 304 and body == b""
    since = {**accept, "If-Modified-Since": modified}
    assert http_request(port, "GET", "/voa/atom.xml", since)[0] == 304
