"""``feedbridge run`` as a real process over temporary folders."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedbridge.app import open_builder
from feedbridge.changes import FULL_HOLD, SETTLE, Pending, relative_changes
from feedbridge.config import Config
from feedbridge.daemon import Daemon, Overrides
from feedbridge.watch import backoff, root_problem

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
        assert ">First title</title>" in d.feed("voa")
        config.write_text('[feeds.voa]\ntitle = "Second title"\n')
        d.send(signal.SIGHUP)
        wait_for(lambda: ">Second title</title>" in d.feed("voa"), what="the reload")
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
        assert ">Second title</title>" in d.feed("voa")
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


def test_what_build_warns_of_is_logged_once(folders: tuple[Path, Path, Path]) -> None:
    """A dump put in the root itself, beside the sources, is in no feed: ``build`` says so
    as a warning, and so does the daemon, once, not at every rescan."""
    d = RunningDaemon(*folders, "--interval", "0.3")
    try:
        (d.dumps / "loose.md").write_text(dump("https://www.voachinese.com/a/loose.html", "L"))
        wait_for(lambda: "dump files directly" in d.output(), what="the warning")
        time.sleep(1.5)  # several rescans
        assert d.output().count("dump files directly") == 1
        assert f"feedbridge: WARNING: {d.dumps} holds 1 dump files directly" in d.output()
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
    names = {
        p.name.removesuffix(".gz") for p in daemon.out.rglob("*") if p.parent.name != "archive"
    }
    assert all(_is_page(p.name.removesuffix(".gz")) for p in daemon.out.glob("*/archive/*"))
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


# -- input that goes missing, watches that die, builds that fail, logs (issue 8) -------------

KEPT = "keeping every published feed as it is"
LINE = re.compile(r"feedbridge: (DEBUG|INFO|WARNING|ERROR|CRITICAL): ")


def snapshot(out: Path) -> dict[str, bytes]:
    """What OUT publishes (not the temporaries of a write in progress)."""
    files = (p for p in sorted(out.rglob("*")) if p.is_file() and not p.name.startswith("."))
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


@pytest.mark.parametrize("how", ["moved away", "an empty folder", "a file"])
def test_missing_root_keeps_every_feed_and_warns_once(
    folders: tuple[Path, Path, Path], how: str
) -> None:
    """A root that is gone, unmounted (an empty mount point) or not a folder any more is not a
    deletion of every source: the feeds stay byte for byte, one warning is logged however many
    rescans and events meet it, and the daemon goes on once the root is back."""
    d = RunningDaemon(*folders, "--interval", "0.2")
    try:
        before = snapshot(d.out)
        away = d.dumps.with_name("away")
        d.dumps.rename(away)
        if how == "an empty folder":
            d.dumps.mkdir()
        elif how == "a file":
            d.dumps.write_text("not a folder\n")
        wait_for(lambda: KEPT in d.output(), what="the warning")
        time.sleep(1.5)  # several rescans, and the watcher polling for the root
        assert snapshot(d.out) == before
        assert d.output().count(KEPT) == 1, d.output()
        if d.dumps.is_dir():
            d.dumps.rmdir()
        elif d.dumps.exists():
            d.dumps.unlink()
        away.rename(d.dumps)
        (d.dumps / "voa" / "back.md").write_text(
            dump("https://www.voachinese.com/a/back.html", "Back again")
        )
        wait_for(lambda: "Back again" in d.feed("voa"), what="a dump once the root is back")
        assert f"dumps root {d.dumps} is back" in d.output()
        assert snapshot(d.out).keys() == before.keys()
    finally:
        assert d.stop() == 0


def test_root_deleted_with_its_sources_and_recreated_is_watched_again(
    folders: tuple[Path, Path, Path],
) -> None:
    """rm -rf of the root (every source folder goes with it) keeps the feeds; once the root
    is made again it is watched again: a new dump is published by its file event, long before
    the next rescan (an hour away)."""
    d = RunningDaemon(*folders, "--interval", "3600")
    try:
        before = snapshot(d.out)
        shutil.rmtree(d.dumps)
        wait_for(lambda: KEPT in d.output(), what="the warning")
        time.sleep(0.5)
        assert snapshot(d.out) == before
        shutil.copytree(EXAMPLES, d.dumps)
        wait_for(lambda: f"watching {d.dumps} again" in d.output(), what="the new watch")
        wait_for(lambda: f"dumps root {d.dumps} is back" in d.output(), what="the rescan")
        # from here on only a file event can publish a dump before the next rescan
        (d.dumps / "nyt" / "recreated.md").write_text(
            dump("https://cn.nytimes.com/recreated/", "Written after the root came back")
        )
        wait_for(lambda: "Written after the root came back" in d.feed("nyt"), what="the event")
        assert snapshot(d.out).keys() == before.keys()
        assert d.output().count(KEPT) == 1
    finally:
        assert d.stop() == 0


def test_failed_build_is_retried_with_backoff_until_it_succeeds(
    folders: tuple[Path, Path, Path],
) -> None:
    """A feed folder replaced by a file makes every build fail (as a full disk would): the
    failure is logged once, the build is retried without any new event, and the feed is
    published once the obstacle is gone."""
    d = RunningDaemon(*folders, "--interval", "3600")
    try:
        shutil.rmtree(d.out / "voa")
        (d.out / "voa").write_text("in the way\n")
        (d.dumps / "voa" / "retry.md").write_text(
            dump("https://www.voachinese.com/a/retry.html", "Published by a retry")
        )
        wait_for(lambda: "build failed" in d.output(), what="the failure")
        time.sleep(1.5)  # the first retry (after 1 s) fails too
        assert d.output().count("build failed") == 1, d.output()
        assert "retrying in 1 s" in d.output()
        (d.out / "voa").unlink()
        wait_for(lambda: "Published by a retry" in d.feed("voa"), what="the retry")
        wait_for(lambda: "build succeeded after " in d.output(), what="the recovery line")
        assert re.search(r"build succeeded after [2-9] failed attempts", d.output())
        assert "Traceback" not in d.output()
    finally:
        assert d.stop() == 0


def test_future_dump_is_logged_once_and_every_line_has_the_format(
    folders: tuple[Path, Path, Path],
) -> None:
    port = free_port()
    d = RunningDaemon(*folders, "--interval", "0.2", "--serve", f"127.0.0.1:{port}")
    try:
        path = d.dumps / "rfi" / "tomorrow.md"
        when = int(time.time()) + 86400
        path.write_text(dump("https://www.rfi.fr/cn/tomorrow", "Tomorrow", when=when))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
        line = f"future: {path}: dated {stamp}, left out until then"
        wait_for(lambda: line in d.output(), what="the future line")
        time.sleep(1.0)  # several rescans
        assert d.output().count(line) == 1
        assert "Tomorrow" not in d.feed("rfi")
    finally:
        assert d.stop() == 0
    lines = d.output().splitlines()
    assert [x for x in lines if not LINE.match(x)] == []
    # "serving" only once the first build has published the feeds
    serving = next(i for i, x in enumerate(lines) if f"serving http://127.0.0.1:{port}/" in x)
    updated = next(i for i, x in enumerate(lines) if ": updated " in x)
    assert updated < serving


def test_busy_daemon_does_not_flood_the_log(folders: tuple[Path, Path, Path]) -> None:
    """Bursts of file events and of SIGHUPs under rescans every 0.1 s: no scheduler lines
    about skipped or missed jobs (nothing is submitted twice), and all of it is published."""
    config = folders[0].parent / "fb.toml"
    config.write_text("")
    d = RunningDaemon(*folders, "--interval", "0.1", "--config", str(config))
    try:
        base = time.time() - 1000
        for i in range(150):
            (d.dumps / "voa" / f"burst{i}.md").write_text(
                dump(f"https://www.voachinese.com/a/burst{i}.html", f"Burst {i}", when=base + i)
            )
            if i % 10 == 0:
                d.send(signal.SIGHUP)
        wait_for(lambda: "Burst 149" in d.feed("voa"), what=f"the last dump:\n{d.output()}")
        time.sleep(0.5)
        assert d.proc.poll() is None
    finally:
        assert d.stop() == 0
    out = d.output()
    assert "maximum number of running instances" not in out
    assert "was missed" not in out
    assert [x for x in out.splitlines() if not LINE.match(x)] == []


# -- in-process units ---------------------------------------------------------------------


def test_root_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def known() -> list[str]:
        return ["voa"]

    def unknown() -> list[str]:
        raise AssertionError("asked the index though the root holds a source")

    root = tmp_path / "root"
    assert root_problem(root, known) == "it is missing"
    root.write_text("")
    assert root_problem(root, known) == "it is not a folder"
    root.unlink()
    root.mkdir()
    assert root_problem(root, list) is None  # a new, empty archive: nothing to lose
    assert root_problem(root, known) == "it holds no source folder any more (an unmounted volume?)"
    (root / ".snapshot").mkdir()
    (root / "stray.md").write_text("")
    assert root_problem(root, known) is not None  # hidden folders and files are no sources
    (root / "voa").mkdir()
    assert root_problem(root, unknown) is None

    def denied(path: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("os.scandir", denied)
    assert root_problem(root, known) == "cannot read it (Permission denied)"


def test_a_rescan_asked_by_events_waits_for_them_to_settle() -> None:
    """rm -rf of a tree is a burst of events: the rescan it asks for runs once they stop, not
    half-way through (which would take the half-deleted tree for the new state)."""
    now = [100.0]
    pending = Pending(clock=lambda: now[0])
    pending.add({"voa/1.md"}, full=True)
    assert pending.take() == (set(), SETTLE)
    now[0] += SETTLE / 2
    pending.add({"voa/2.md"})
    assert pending.take() == (set(), SETTLE / 2)  # the paths wait for the rescan
    now[0] += SETTLE / 2
    assert pending.take() == (None, None)
    assert pending.take() == (set(), None)  # the rescan took the paths too
    assert not pending
    # events that never stop hold the rescan back no longer than FULL_HOLD
    for _ in range(int(FULL_HOLD / (SETTLE / 2))):
        pending.add((), full=True)
        assert pending.take()[0] == set()
        now[0] += SETTLE / 2
    pending.add((), full=True)
    assert pending.take() == (None, None)


def test_a_path_is_taken_once_it_had_no_event_for_settle_seconds() -> None:
    now = [0.0]
    pending = Pending(clock=lambda: now[0])
    pending.add({"voa/1.md", "nyt/1.md"})
    now[0] = 0.2
    pending.add({"voa/1.md"})  # still being written
    assert pending.take() == (set(), SETTLE - 0.2)
    now[0] = SETTLE
    assert pending.take() == ({"nyt/1.md"}, 0.2)
    assert "voa/1.md" in pending
    now[0] = 0.2 + SETTLE
    assert pending.take() == ({"voa/1.md"}, None)
    assert not pending


def test_relative_paths_and_rescans(tmp_path: Path) -> None:
    root = tmp_path / "root"
    files = {f"{root}/scraper.log"}

    def is_file(path: str) -> bool:
        return path in files

    def rel(*paths: str) -> tuple[set[str], bool]:
        return relative_changes(root, [f"{root}/{p}" for p in paths], is_file)

    assert rel("voa/1.md", "voa/sub/deep.md", ".git/x/y") == ({"voa/1.md"}, False)
    assert rel("voa") == (set(), True)  # a source folder made, removed or renamed
    assert rel("gone") == (set(), True)  # deleted: it may have been a source
    assert rel("scraper.log") == (set(), False)  # a file in the root is no source
    assert rel(".hidden", ".cache/x.md") == (set(), False)
    assert relative_changes(root, [f"{tmp_path}/other/x.md"], is_file) == (set(), False)
    assert relative_changes(root, [str(root)], is_file) == (set(), True)  # chmod, deleted


@pytest.mark.parametrize(
    ("attempt", "expected"), [(0, 1.0), (1, 2.0), (2, 4.0), (8, 256.0), (9, 300.0), (500, 300.0)]
)
def test_backoff(attempt: int, expected: float) -> None:
    assert backoff(attempt, first=1.0, cap=300.0) == expected


def test_a_dump_that_changes_while_it_is_read_is_read_again(
    folders: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: 'a file that changes while it is being read is read again' -- the writer that
    appends during the read is not published from the stale read, but re-queued and
    published whole once it settles."""
    import feedbridge.build

    dumps, out, state = folders
    path = dumps / "voa" / "growing.md"
    head = dump("https://www.voachinese.com/a/growing.html", "Growing")
    path.write_text(head)
    real = feedbridge.build.read_dump
    appended: list[bool] = []

    def read_then_append(root: Path, st: Any, **kw: Any) -> Any:
        result = real(root, st, **kw)
        if st.rel == "voa/growing.md" and not appended:
            appended.append(True)
            path.write_text(head.replace("Growing", "Grown in full"))
        return result

    monkeypatch.setattr(feedbridge.build, "read_dump", read_then_append)
    with open_builder(Config(), dumps=dumps, out=out, base_url=BASE_URL, state_dir=state) as (
        builder,
        state_dir,
    ):
        out.mkdir(exist_ok=True)  # the lock on OUT made it already
        d = Daemon(
            config=Config(),
            config_file=None,
            overrides=Overrides(dumps, out, None, None, state),
            base_url=BASE_URL,
        )
        d._builder, d._state = builder, state_dir
        now = [0.0]
        d._pending = Pending(clock=lambda: now[0])
        d.queue(({"voa/growing.md"}, False))
        now[0] += SETTLE
        d._changes()
        assert appended
        assert "voa/growing.md" in d._pending  # read again later, not taken as it was
        assert "Growing" not in read(out / "voa" / "atom.xml")
        now[0] += SETTLE
        d._changes()
        assert "Grown in full" in read(out / "voa" / "atom.xml")


class FakeScheduler:
    """Records the jobs the daemon submits; ``jobs`` are those not yet removed."""

    def __init__(self) -> None:
        self.added: list[tuple[str, datetime]] = []
        self.jobs: dict[str, datetime] = {}

    def add_job(
        self, func: object, trigger: str, *, run_date: datetime, id: str, **_: object
    ) -> None:
        self.added.append((id, run_date))
        self.jobs[id] = run_date

    def get_job(self, job_id: str) -> datetime | None:
        return self.jobs.get(job_id)

    def remove_job(self, job_id: str) -> None:
        del self.jobs[job_id]


def test_a_one_off_job_is_not_submitted_while_one_waits(tmp_path: Path) -> None:
    """The cause of APScheduler's 'maximum number of running instances reached' floods."""
    d = Daemon(
        config=Config(),
        config_file=None,
        overrides=Overrides(tmp_path, tmp_path / "out", None, None, None),
        base_url=BASE_URL,
    )
    fake = FakeScheduler()
    d._scheduler = fake
    t = datetime(2026, 1, 1, tzinfo=UTC)
    second = timedelta(seconds=1)
    for _ in range(100):
        d._schedule("changes", d._job_changes, t, once=True)
    d._schedule("changes", d._job_changes, t + second, once=True)  # one due earlier waits
    assert fake.added == [("changes", t)]
    d._schedule("changes", d._job_changes, t - second, once=True)  # earlier: replaces it
    d._schedule("reload", d._job_reload, t, once=True)  # another job
    assert fake.added[1:] == [("changes", t - second), ("reload", t)]
    d._started("changes")  # it runs: what is queued from now on needs another instance
    d._schedule("changes", d._job_changes, t + second, once=True)
    assert fake.added[3:] == [("changes", t + second)]


def test_state_folder_errors_are_retried_with_growing_waits(
    folders: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An index that cannot be written (a full state folder) fails the build: logged once
    as one line, retried after 1 s, 2 s, 4 s ..., capped at the interval, reset on success."""
    import sqlite3

    dumps, out, state = folders
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with open_builder(Config(), dumps=dumps, out=out, base_url=BASE_URL, state_dir=state) as (
        builder,
        state_dir,
    ):
        d = Daemon(
            config=Config(),
            config_file=None,
            overrides=Overrides(dumps, out, None, 5.0, state),
            base_url=BASE_URL,
            clock=lambda: t,
        )
        d._builder, d._state = builder, state_dir
        fake = FakeScheduler()
        d._scheduler = fake
        real = builder.build
        failures = [sqlite3.OperationalError("database or disk is full")] * 5

        def build(**kw: Any) -> Any:
            if failures:
                raise failures.pop()
            return real(**kw)

        monkeypatch.setattr(builder, "build", build)
        caplog.set_level(logging.DEBUG, "feedbridge")
        for _ in range(5):
            d._job_retry()
        waits = [(when - t).total_seconds() for job, when in fake.added if job == "retry"]
        assert waits == [1, 2, 4, 5, 5]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "build failed: OperationalError: database or disk is full; retrying in 1 s,"
            " then less often (every 5 s at most)"
        ]
        assert errors[0].exc_info is None  # an environment error, not a bug: no traceback
        d._job_retry()
        assert "build succeeded after 5 failed attempts" in caplog.text
        assert "retry" not in fake.jobs
        assert (out / "voa" / "atom.xml").is_file()
