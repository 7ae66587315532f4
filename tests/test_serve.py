"""The embedded server (WhiteNoise on waitress) on 127.0.0.1, a free port, always closed."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from feedbridge.config import Config, parse_config
from feedbridge.errors import ConfigError
from feedbridge.serve import Server, is_visible, parse_listen, served_base_url

from .conftest import EXAMPLES
from .daemon_helpers import CONTENT_TYPES, http_request, wait_for
from .helpers import build
from .serve_cases import (
    SECRET,
    plant_folder_index,
    plant_hazards,
    redirect_target,
    slowloris,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    out = tmp_path / "out"
    build(EXAMPLES, out, Config(limit=2))  # feeds of two entries: archive pages too
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
    build(EXAMPLES, out, Config(limit=2))
    assert request(server, "GET", "/voa/atom.xml", {"If-None-Match": etag})[0] == 304
    build(EXAMPLES, out, parse_config({"limit": 2, "feeds": {"voa": {"title": "Renamed"}}}))
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


# -- what is served: visible regular files whose real path is inside OUT ---------------------


def test_serves_only_visible_regular_files_inside_out(
    served: tuple[Server, Path], tmp_path: Path
) -> None:
    server, out = served
    served = [
        (method, path, status)
        for path in plant_hazards(out, tmp_path / "outside")
        for method in ("GET", "HEAD")
        for status, _, body in [request(server, method, path)]
        if status != 404 or SECRET in body
    ]
    assert served == []
    assert request(server, "GET", "/voa/atom.xml")[0] == 200  # the rest is still served


def test_a_symlink_inside_out_to_a_file_inside_out_is_served(served: tuple[Server, Path]) -> None:
    server, out = served
    (out / "latest.xml").symlink_to(out / "voa" / "atom.xml")
    status, _, body = request(server, "GET", "/latest.xml")
    assert status == 200 and body == (out / "voa" / "atom.xml").read_bytes()


def test_a_compressed_twin_outside_out_is_not_offered(
    served: tuple[Server, Path], tmp_path: Path
) -> None:
    server, out = served
    plant_hazards(out, tmp_path / "outside")
    (out / "voa" / "atom.xml.gz").unlink()  # the twin the build wrote, replaced by a link out
    (out / "voa" / "atom.xml.gz").symlink_to(tmp_path / "outside" / "secret.txt")
    status, headers, body = request(server, "GET", "/voa/atom.xml", {"Accept-Encoding": "gzip"})
    assert status == 200 and "content-encoding" not in headers
    assert body == (out / "voa" / "atom.xml").read_bytes()


@pytest.mark.parametrize(
    ("path", "visible"),
    [
        ("/", True),
        ("/voa/atom.xml", True),
        ("/voa/", True),
        ("/.git/config", False),
        ("/voa/.atom.xml.1.tmp", False),
        ("/voa/x.tmp", False),
        ("/voa/../x", False),
        ("/./x", False),
        ("//x", False),
    ],
)
def test_is_visible(path: str, visible: bool) -> None:
    assert is_visible(path) is visible


# -- folders: NAME/ is its index.html, NAME redirects there ----------------------------------


def test_a_folder_serves_its_index_page(served: tuple[Server, Path]) -> None:
    server, out = served
    page = plant_folder_index(out)
    status, headers, body = request(server, "GET", "/voa/")
    assert status == 200 and body == page
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, headers, _ = request(server, "GET", "/voa")
    assert status in (301, 302)
    assert redirect_target(server.port, "/voa", headers["location"]) == server.url + "voa/"


def test_a_folder_without_an_index_page_is_404(served: tuple[Server, Path]) -> None:
    server, out = served
    for page in (out / "nyt" / "index.html", out / "nyt" / "index.html.gz"):
        page.unlink()  # every feed folder has its page: take it away
    assert request(server, "GET", "/nyt/")[0] == 404
    assert request(server, "GET", "/nyt")[0] == 404


# -- staying up: slow and many connections ---------------------------------------------------


def test_slowloris_does_not_lock_out_a_reader(served: tuple[Server, Path]) -> None:
    server, out = served
    with slowloris(server.port, 300):
        status, _, body = request(server, "GET", "/voa/atom.xml")
        assert status == 200 and body == (out / "voa" / "atom.xml").read_bytes()


def test_many_readers_are_answered_during_a_slowloris(served: tuple[Server, Path]) -> None:
    server, out = served
    expected = (out / "voa" / "atom.xml").read_bytes()
    with slowloris(server.port, 200), ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(lambda _: request(server, "GET", "/voa/atom.xml"), range(150)))
    assert [status for status, _, _ in results] == [200] * 150
    assert all(body == expected for _, _, body in results)


def test_at_the_connection_limit_the_longest_waiting_connection_makes_room(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    build(EXAMPLES, out)
    server = Server(out, "127.0.0.1", 0, max_connections=20)
    server.start()
    try:
        with slowloris(server.port, 60) as attack:
            assert request(server, "GET", "/voa/atom.xml")[0] == 200
            wait_for(lambda: attack.closed(attack.sockets[0]), what="the oldest to be closed")
    finally:
        server.close()


def test_readers_that_take_no_bytes_make_room_at_the_connection_limit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(EXAMPLES, out)
    (out / "big.html").write_bytes(b"x" * (8 << 20))
    server = Server(out, "127.0.0.1", 0, max_connections=6)
    server.start()
    stalled: list[socket.socket] = []
    try:
        for _ in range(6):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /big.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            stalled.append(sock)  # and never read
        time.sleep(0.5)
        assert request(server, "GET", "/voa/atom.xml")[0] == 200
    finally:
        for sock in stalled:
            sock.close()
        server.close()


def test_a_request_that_does_not_arrive_in_time_is_closed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(EXAMPLES, out)
    server = Server(out, "127.0.0.1", 0, request_timeout=1)
    server.start()
    try:
        with slowloris(server.port, 3) as attack:
            wait_for(
                lambda: all(attack.closed(s) for s in attack.sockets), what="the slow requests"
            )
            assert request(server, "GET", "/voa/atom.xml")[0] == 200
    finally:
        server.close()


# -- the address to link to when serving -----------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 9000, "http://127.0.0.1:9000/"),
        ("0.0.0.0", 80, "http://127.0.0.1:80/"),
        ("::", 8080, "http://[::1]:8080/"),
        ("::1", 8080, "http://[::1]:8080/"),
        ("localhost", 8080, "http://localhost:8080/"),
    ],
)
def test_served_base_url(host: str, port: int, url: str) -> None:
    assert served_base_url(host, port) == url


def test_served_base_url_needs_a_port() -> None:
    with pytest.raises(ConfigError, match="port 0"):
        served_base_url("127.0.0.1", 0)


def test_the_connection_limit_leaves_descriptors_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    from feedbridge.serve import RESERVED_FDS, connection_limit

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 4096))
    assert connection_limit(1000) == 1024 - RESERVED_FDS
    assert connection_limit(20) == 20
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (64, 64))
    assert connection_limit(1000) == 8
