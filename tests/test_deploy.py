"""The shipped deployment files work: real nginx over a built OUT, and the systemd unit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedbridge.config import Config, parse_config

from .conftest import EXAMPLES, REPO
from .daemon_helpers import CONTENT_TYPES, free_port, http_request, wait_for
from .helpers import build
from .serve_cases import SECRET, plant_folder_index, plant_hazards, redirect_target

pytestmark = pytest.mark.slow

NGINX_BLOCK = REPO / "config" / "nginx.conf"
UNIT = REPO / "config" / "feedbridge.service"


def _nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("nginx is not installed (Debian package nginx-light; .ci/run installs it)")


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    out = tmp_path / "out"
    build(EXAMPLES, out, Config(limit=2))  # feeds of two entries: the rest on archive pages
    port = free_port()
    block = NGINX_BLOCK.read_text()
    block = re.sub(r"^(\s*)listen\s+80;", rf"\1listen 127.0.0.1:{port};", block, flags=re.M)
    block = re.sub(r"^(\s*)root\s+\S+;", rf"\1root {out};", block, flags=re.M)
    assert f"listen 127.0.0.1:{port};" in block and f"root {out};" in block
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    (prefix / "server.conf").write_text(block)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
error_log {prefix}/error.log;
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/server.conf;
}}
"""
    )
    # As root nginx would switch its workers to "nobody", who cannot read a private tmp.
    directives = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    proc = subprocess.Popen(
        [_nginx(), "-p", str(prefix), "-c", str(conf), "-g", directives], stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: _get(port, "/")[0] == 200 or proc.poll() is not None, what="nginx")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield port, out
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def _get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return http_request(port, "GET", path, headers)


@pytest.mark.parametrize(
    ("path", "content_type"),
    CONTENT_TYPES,
)
def test_nginx_content_types(nginx: tuple[int, Path], path: str, content_type: str) -> None:
    port, out = nginx
    status, headers, body = _get(port, path)
    assert status == 200
    assert headers["content-type"] == content_type
    assert body == (out / (path.strip("/") or "index.html")).read_bytes()


def test_nginx_answers_304_after_a_rebuild_that_changed_nothing(nginx: tuple[int, Path]) -> None:
    port, out = nginx
    _, headers, _ = _get(port, "/voa/atom.xml")
    etag, modified = headers["etag"], headers["last-modified"]
    time.sleep(1.1)  # Last-Modified has one-second resolution: a rewrite would show
    build(EXAMPLES, out, Config(limit=2))
    assert _get(port, "/voa/atom.xml", {"If-None-Match": etag})[0] == 304
    assert _get(port, "/voa/atom.xml", {"If-Modified-Since": modified})[0] == 304
    build(EXAMPLES, out, parse_config({"limit": 2, "feeds": {"voa": {"title": "Changed"}}}))
    status, headers, body = _get(port, "/voa/atom.xml", {"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag and b"Changed" in body


def test_nginx_keeps_archive_pages_longer_than_feeds(nginx: tuple[int, Path]) -> None:
    port, out = nginx
    assert _get(port, "/voa/archive/2024-11-1.xml")[1]["cache-control"] == "public, max-age=86400"
    assert not (out / "voa" / "archive" / "2024-11-1.xml.gz").exists()  # compressed as sent
    gzipped = _get(port, "/voa/archive/2024-11-1.xml", {"Accept-Encoding": "gzip"})[1]
    assert gzipped["content-encoding"] == "gzip"
    assert _get(port, "/voa/atom.xml")[1]["cache-control"] == "public, max-age=60"


def test_nginx_hides_dot_files(nginx: tuple[int, Path]) -> None:
    port, out = nginx
    (out / "voa" / ".atom.xml.abc.tmp").write_text("partial")
    assert _get(port, "/voa/.atom.xml.abc.tmp")[0] == 404


def test_nginx_serves_only_visible_regular_files_inside_out(
    nginx: tuple[int, Path], tmp_path: Path
) -> None:
    port, out = nginx
    (out / ".git").mkdir()
    (out / ".git" / "atom.xml").write_bytes(SECRET)  # a feed name cannot outrank a dot
    served = [
        (path, status)
        for path in [*plant_hazards(out, tmp_path / "outside"), "/.git/atom.xml"]
        for status, _, body in [_get(port, path)]
        if status != 404 or SECRET in body
    ]
    assert served == []
    assert _get(port, "/voa/atom.xml")[0] == 200


def test_nginx_serves_a_folder_s_index_page(nginx: tuple[int, Path]) -> None:
    port, out = nginx
    page = plant_folder_index(out)
    status, headers, body = _get(port, "/voa/")
    assert status == 200 and body == page
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, headers, _ = _get(port, "/voa")
    assert status in (301, 302)
    assert redirect_target(port, "/voa", headers["location"]) == f"http://127.0.0.1:{port}/voa/"


def _verify_unit(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd; .ci/run installs it)")
    unit = tmp_path / "feedbridge.service"
    unit.write_text(text)
    return subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False, timeout=60
    )


def test_systemd_unit_verifies_and_runs_the_daemon(tmp_path: Path) -> None:
    text = UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(\S+) (.*)$", text, re.M)
    assert exec_start and exec_start.group(2).startswith("run --config ")
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", text, re.M)
    assert re.search(r"^KillSignal=SIGTERM$", text, re.M)
    feedbridge = Path(sys.executable).parent / "feedbridge"
    local = text.replace(exec_start.group(1), str(feedbridge))
    result = _verify_unit(local, tmp_path)
    assert result.returncode == 0, result.stderr


def test_systemd_verify_can_fail(tmp_path: Path) -> None:
    result = _verify_unit("[Service]\nExecStart=relative/path\n", tmp_path)
    assert result.returncode != 0
