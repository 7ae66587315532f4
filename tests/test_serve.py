"""The embedded server (WhiteNoise on waitress) on 127.0.0.1, a free port, always closed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedbridge.config import parse_config
from feedbridge.errors import ConfigError
from feedbridge.serve import Server, parse_listen

from .conftest import EXAMPLES
from .daemon_helpers import CONTENT_TYPES, http_request
from .helpers import build


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    out = tmp_path / "out"
    build(EXAMPLES, out)
    (tmp_path / "secret.txt").write_text("outside OUT")
    server = Server(out, "127.0.0.1", 0)
    server.start()
    yield server, out
    server.close()


def request(
    server: Server, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    assert server.host == "127.0.0.1"
    return http_request(server.port, method, path, headers)


@pytest.mark.parametrize(
    ("path", "content_type"),
    CONTENT_TYPES,
)
def test_content_types(served: tuple[Server, Path], path: str, content_type: str) -> None:
    server, out = served
    status, headers, body = request(server, "GET", path)
    assert status == 200
    assert headers["content-type"] == content_type
    target = out / (path.strip("/") or "index.html")
    assert body == target.read_bytes()


def test_etag_and_last_modified_give_304(served: tuple[Server, Path]) -> None:
    server, _ = served
    _, headers, _ = request(server, "GET", "/voa/atom.xml")
    etag, modified = headers["etag"], headers["last-modified"]
    assert request(server, "GET", "/voa/atom.xml", {"If-None-Match": etag})[0] == 304
    assert request(server, "GET", "/voa/atom.xml", {"If-Modified-Since": modified})[0] == 304
    assert request(server, "GET", "/voa/atom.xml", {"If-None-Match": '"other"'})[0] == 200


def test_unchanged_rebuild_keeps_the_etag_and_a_change_replaces_it(
    served: tuple[Server, Path], tmp_path: Path
) -> None:
    server, out = served
    etag = request(server, "GET", "/voa/atom.xml")[1]["etag"]
    time.sleep(0.01)
    build(EXAMPLES, out)
    assert request(server, "GET", "/voa/atom.xml", {"If-None-Match": etag})[0] == 304
    build(EXAMPLES, out, parse_config({"feeds": {"voa": {"title": "Renamed"}}}))
    status, headers, body = request(server, "GET", "/voa/atom.xml", {"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag and b"Renamed" in body


def test_head_has_headers_and_no_body(served: tuple[Server, Path]) -> None:
    server, out = served
    status, headers, body = request(server, "HEAD", "/voa/rss.xml")
    assert status == 200 and body == b""
    assert int(headers["content-length"]) == (out / "voa" / "rss.xml").stat().st_size


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/voa/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/voa/%2e%2e/%2e%2e/secret.txt",
        "/..\\secret.txt",
        "//etc/passwd",
        "/%00",
    ],
)
def test_no_path_outside_out(served: tuple[Server, Path], path: str) -> None:
    server, _ = served
    status, _, body = request(server, "GET", path)
    assert status in (400, 404)
    assert b"outside OUT" not in body and b"root:" not in body


def test_missing_file_is_404(served: tuple[Server, Path]) -> None:
    assert request(served[0], "GET", "/nope/atom.xml")[0] == 404


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("8080", ("127.0.0.1", 8080)),
        (":9", ("127.0.0.1", 9)),
        ("[::1]:80", ("::1", 80)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["host", "h:port", "h:70000", ""])
def test_parse_listen_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_listen(value)


def test_busy_port_is_a_config_error(served: tuple[Server, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot serve"):
        Server(tmp_path, "127.0.0.1", served[0].port)
