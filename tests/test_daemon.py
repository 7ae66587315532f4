"""``feedbridge run`` as a real process over temporary folders."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import BASE_URL, EXAMPLES
from .daemon_helpers import DEADLINE, RunningDaemon, feedbridge_cmd, free_port, read, wait_for
from .helpers import target_args

pytestmark = pytest.mark.slow


def dump(url: str, title: str, *, when: float | None = None, body: str = "<p>x</p>") -> str:
    millis = int((time.time() if when is None else when) * 1000)
    return f"<!--{millis}-->\n[{title}]({url})\n------\n\n{body}\n"


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    dumps = tmp_path / "dumps"
    shutil.copytree(EXAMPLES, dumps)
    return dumps, tmp_path / "out", tmp_path / "state"


@pytest.fixture
def daemon(folders: tuple[Path, Path, Path]) -> Iterator[RunningDaemon]:
    d = RunningDaemon(*folders)
    yield d
    d.stop()


def test_first_build_writes_every_feed(daemon: RunningDaemon) -> None:
    for name in ("voa", "nyt", "rfi"):
        assert "<feed" in daemon.feed(name)
    assert (daemon.out / "index.html").is_file()


def test_new_edited_and_deleted_dump(daemon: RunningDaemon) -> None:
    path = daemon.dumps / "voa" / "new.md"
    path.write_text(dump("https://www.voachinese.com/a/new.html", "Brand new"))
    wait_for(lambda: "Brand new" in daemon.feed("voa"), what="the new dump")
    path.write_text(dump("https://www.voachinese.com/a/new.html", "Edited in place"))
    wait_for(lambda: "Edited in place" in daemon.feed("voa"), what="the edit")
    assert "Brand new" not in daemon.feed("voa")
    path.unlink()
    wait_for(lambda: "a/new.html" not in daemon.feed("voa"), what="the deletion")
    assert "<feed" in daemon.feed("voa")


def test_edit_touches_only_its_feed(daemon: RunningDaemon) -> None:
    before = {name: (daemon.out / name / "atom.xml").stat().st_mtime_ns for name in ("nyt", "rfi")}
    path = daemon.dumps / "voa" / "1008880.md"
    path.write_text(path.read_text("utf-8").replace("库克群岛", "库克群岛（更新）", 1), "utf-8")
    wait_for(lambda: "（更新）" in daemon.feed("voa"), what="the edit")
    after = {name: (daemon.out / name / "atom.xml").stat().st_mtime_ns for name in ("nyt", "rfi")}
    assert after == before


def test_atomic_rename_is_picked_up_and_temporaries_are_not(daemon: RunningDaemon) -> None:
    tmp = daemon.dumps / "nyt" / ".incoming.md.tmp"
    tmp.write_text(dump("https://cn.nytimes.com/renamed/", "Renamed into place"))
    time.sleep(0.6)  # longer than the settle time: a temporary must never be published
    assert "Renamed into place" not in daemon.feed("nyt")
    tmp.replace(daemon.dumps / "nyt" / "renamed.md")
    wait_for(lambda: "Renamed into place" in daemon.feed("nyt"), what="the renamed dump")


def test_slow_partial_write_never_publishes_a_partial_entry(daemon: RunningDaemon) -> None:
    seen: list[str] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            text = daemon.feed("rfi")
            if "slow-writer" in text:
                seen.append(text)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        full = dump(
            "https://www.rfi.fr/cn/slow-writer",
            "Slow writer",
            body="<p>PART-ONE</p>" + "<p>filler</p>" * 200 + "<p>PART-TWO</p>",
        )
        with (daemon.dumps / "rfi" / "slow.md").open("w") as f:
            for i in range(0, len(full), 256):
                f.write(full[i : i + 256])
                f.flush()
                time.sleep(0.02)
        wait_for(lambda: "PART-TWO" in daemon.feed("rfi"), what="the complete dump")
        time.sleep(0.1)
    finally:
        done.set()
        sampler.join()
    assert seen
    assert all("PART-TWO" in text for text in seen)


@pytest.mark.parametrize("skew", [-86400 * 365, 3600])
def test_file_mtime_does_not_delay_publication(daemon: RunningDaemon, skew: int) -> None:
    """A copy that keeps an old mtime, or a clock that puts it in the future, is still read as
    soon as the writes stop."""
    path = daemon.dumps / "voa" / f"skew{skew}.md"
    path.write_text(dump(f"https://www.voachinese.com/a/skew{skew}.html", f"Skewed {skew}"))
    when = time.time() + skew
    os.utime(path, (when, when))
    started = time.monotonic()
    wait_for(lambda: f"Skewed {skew}" in daemon.feed("voa"), what="the skewed dump")
    assert time.monotonic() - started < 5


def test_future_dump_is_published_when_its_time_comes(daemon: RunningDaemon) -> None:
    when = int(time.time()) + 3
    (daemon.dumps / "voa" / "later.md").write_text(
        dump("https://www.voachinese.com/a/later.html", "Published later", when=when)
    )
    time.sleep(1.0)
    assert "Published later" not in daemon.feed("voa")
    wait_for(lambda: "Published later" in daemon.feed("voa"), what="the future dump")
    assert time.time() >= when


def test_new_source_folder_yields_a_new_feed(daemon: RunningDaemon) -> None:
    (daemon.dumps / "dw").mkdir()
    (daemon.dumps / "dw" / "1.md").write_text(dump("https://www.dw.com/zh/a-1", "DW one"))
    wait_for(lambda: "DW one" in daemon.feed("dw"), what="the new feed")
    # index.html and feeds.opml are two files written one after the other: wait for each
    wait_for(lambda: f"{BASE_URL}dw/atom.xml" in read(daemon.out / "index.html"))
    wait_for(lambda: f"{BASE_URL}dw/atom.xml" in read(daemon.out / "feeds.opml"))


def test_sigterm_exits_0_quickly_and_leaves_no_temporaries(daemon: RunningDaemon) -> None:
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM, timeout=5) == 0
    assert time.monotonic() - started < 5
    leftovers = [
        p for p in (*daemon.out.rglob("*"), *daemon.state.rglob("*")) if p.name.endswith(".tmp")
    ]
    assert leftovers == []
    assert "stopping" in daemon.output()


def test_sigint_exits_0(daemon: RunningDaemon) -> None:
    assert daemon.stop(signal.SIGINT, timeout=5) == 0


def test_sighup_reloads_a_good_config_and_keeps_the_old_one_on_a_bad(
    folders: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    config = tmp_path / "fb.toml"
    config.write_text('[feeds.voa]\ntitle = "First title"\n')
    d = RunningDaemon(*folders, "--config", str(config))
    try:
        assert "<title>First title</title>" in d.feed("voa")
        config.write_text('[feeds.voa]\ntitle = "Second title"\n')
        d.send(signal.SIGHUP)
        wait_for(lambda: "<title>Second title</title>" in d.feed("voa"), what="the reload")
        config.write_text('[feeds.voa]\ntitel = "Broken"\n')
        d.send(signal.SIGHUP)
        wait_for(lambda: "keeping the running configuration" in d.output(), what="the error")
        assert "unknown key 'titel'" in d.output()
        # still running, still the old configuration, still reacting to dumps
        assert d.proc.poll() is None
        (d.dumps / "voa" / "after.md").write_text(
            dump("https://www.voachinese.com/a/after.html", "After the bad reload")
        )
        wait_for(lambda: "After the bad reload" in d.feed("voa"), what="a dump after it")
        assert "<title>Second title</title>" in d.feed("voa")
    finally:
        assert d.stop() == 0


def test_second_instance_exits_2_naming_the_pid(daemon: RunningDaemon) -> None:
    args = target_args(daemon.dumps, daemon.out, daemon.state)
    for command in ("run", "build"):
        second = subprocess.run(
            feedbridge_cmd(command, *args),
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert f"pid {daemon.proc.pid}" in second.stderr


def test_lock_is_released_after_a_crash(folders: tuple[Path, Path, Path]) -> None:
    d = RunningDaemon(*folders)
    d.stop(signal.SIGKILL)
    again = RunningDaemon(*folders)
    assert again.stop() == 0


def test_rejected_dump_is_reported_once(folders: tuple[Path, Path, Path]) -> None:
    d = RunningDaemon(*folders, "--interval", "0.3")
    try:
        (d.dumps / "voa" / "bad.md").write_text("no title line here\n------\n")
        wait_for(lambda: "rejected:" in d.output(), what="the rejection")
        time.sleep(1.5)  # several rescans
        assert d.output().count("rejected:") == 1
        assert f"{d.dumps / 'voa' / 'bad.md'}:1: expected the title line" in d.output()
    finally:
        d.stop()


def test_status_command(daemon: RunningDaemon) -> None:
    (daemon.dumps / "nyt" / "bad.md").write_bytes(b"<!--1-->\n[x](ftp://nope)\n---\n")
    wait_for(lambda: "bad.md" in read(daemon.state / "status.json"), what="the status")
    result = subprocess.run(
        feedbridge_cmd("status", "--out", str(daemon.out), "--state", str(daemon.state)),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    assert "last build: " in result.stdout
    assert "voa: 4 entries" in result.stdout
    assert "rejected dumps: 1" in result.stdout
    assert "URL scheme 'ftp' is not http or https" in result.stdout
    assert f"daemon pid: {daemon.proc.pid}" in result.stdout
    status = json.loads(read(daemon.state / "status.json"))
    assert status["feeds"]["nyt"] == 3


def _is_page(name: str) -> bool:
    stem, _, suffix = name.rpartition(".")
    kind = suffix in ("xml", "json", "html")
    return kind and stem[:4].isdigit() and stem.rpartition("-")[2].isdigit()


def test_state_lives_outside_out(daemon: RunningDaemon) -> None:
    names = {p.name for p in daemon.out.rglob("*") if p.parent.name != "archive"}
    assert all(_is_page(p.name) for p in daemon.out.glob("*/archive/*"))
    assert names <= {
        "archive",
        "voa",
        "nyt",
        "rfi",
        "atom.xml",
        "rss.xml",
        "feed.json",
        "index.html",
        "feeds.opml",
    }
    assert (daemon.state / "index.sqlite3").exists() and (daemon.state / "lock").exists()


def test_serve_flag_serves_the_feeds(folders: tuple[Path, Path, Path]) -> None:
    port = free_port()
    d = RunningDaemon(*folders, "--serve", f"127.0.0.1:{port}")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/voa/atom.xml", timeout=5) as r:
            assert r.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
            assert r.read() == (d.out / "voa" / "atom.xml").read_bytes()
        assert f"http://127.0.0.1:{port}/" in d.output()
    finally:
        assert d.stop() == 0
