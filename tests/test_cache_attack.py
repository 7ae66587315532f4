"""Attacks on what a Builder kept open (the daemon) remembers between builds: whatever happens
between two builds, each build publishes the bytes a cold build in a new process publishes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedbridge.app import open_builder
from feedbridge.config import parse_config

from .conftest import BASE_URL
from .daemon_helpers import RunningDaemon, wait_for
from .test_splice import _COLD_BUILD, _CONFIG, _dump, _files, daemon_dumps

__all__ = ["daemon_dumps"]  # the fixture

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass
class Step:
    what: str
    change: Callable[[], list[str] | None] = lambda: []
    now: datetime = NOW
    config: dict[str, Any] | None = None
    base_url: str = BASE_URL


def _cold_build(config: dict[str, Any], dumps: Path, out: Path, now: datetime, base: str) -> None:
    """A build in a process of its own, in a state folder of its own."""
    state = out.with_name(out.name + "-state")
    args = json.dumps([config, str(dumps), str(out), str(state), base, now.isoformat()])
    env = {**os.environ, "XDG_CACHE_HOME": str(out.with_name(out.name + "-cache"))}
    subprocess.run([sys.executable, "-c", _COLD_BUILD, args], check=True, env=env, timeout=120)


def _attack(tmp_path: Path, dumps: Path, steps: list[Step], config: dict[str, Any]) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    with open_builder(
        parse_config(config), dumps=dumps, out=out, base_url=BASE_URL, state_dir=state,
        parallel=False,
    ) as (builder, _):  # fmt: skip
        builder.build(now=NOW)
        for n, step in enumerate(steps):
            paths = step.change()
            if step.config is not None:
                config = step.config
                builder.target = replace(
                    builder.target, config=parse_config(config), base_url=step.base_url
                )
            builder.build(now=step.now, paths=paths)
            cold = tmp_path / f"cold{n}"
            _cold_build(config, dumps, cold, step.now, step.base_url)
            assert _files(cold) == _files(out), step.what
            shutil.rmtree(cold)


def _with_feeds(**feeds: dict[str, Any]) -> dict[str, Any]:
    return {**_CONFIG, "feeds": {**_CONFIG["feeds"], **feeds}}


def test_reloads_that_change_what_feeds_show(tmp_path: Path, daemon_dumps: Path) -> None:
    """SIGHUP changes a feed's limit, sources, archive flag and head, declares a new feed over
    the same sources, moves the base URL: each build after it is a cold build's."""
    s_only = {"sources": ["s"], "author": "Ann"}
    steps = [
        Step("limit raised", config=_with_feeds(s={**s_only, "limit": 7})),
        Step("limit lowered", config=_with_feeds(s={**s_only, "limit": 2})),
        Step("archive off", config=_with_feeds(s={**s_only, "archive": False})),
        Step("archive on again", config=_with_feeds(s=s_only)),
        Step("sources swapped", config=_with_feeds(s={"sources": ["t"]}, t={"sources": ["s"]})),
        Step(
            "a new feed over the same sources, one archived",
            config=_with_feeds(u={"sources": ["s"], "limit": 3, "archive": True}),
        ),
        Step("title and base URL", config={**_CONFIG, "title": "Other"}, base_url=BASE_URL + "x/"),
        Step(
            "a feed renamed",
            config={
                **_CONFIG,
                "feeds": {
                    "s2": s_only,
                    "t": _CONFIG["feeds"]["t"],
                    "both": _CONFIG["feeds"]["both"],
                },
            },
        ),
        Step(
            "only one feed, no auto feeds",
            config={**_CONFIG, "auto_feeds": False, "feeds": {"both": {"sources": ["s", "t"]}}},
        ),
        Step("back as it was", config=_CONFIG),
    ]
    _attack(tmp_path, daemon_dumps, steps, _CONFIG)


def test_the_clock_set_back_and_jumped_forward(tmp_path: Path, daemon_dumps: Path) -> None:
    """Builds of nothing at times going back and forth, also to exactly a dump's time."""
    exact = datetime(2024, 1, 3, tzinfo=UTC) + timedelta(days=11 * 9)  # s9 and t9 are dated so
    between = NOW + timedelta(days=400)

    def add() -> list[str]:
        _dump(daemon_dumps / "t" / "70.md", "between", between, "<p>between</p>")
        return ["t/70.md"]

    steps = [
        Step("a year back", now=NOW - timedelta(days=365)),
        Step("exactly a dump's time", now=exact),
        Step("a second before it", now=exact - timedelta(seconds=1)),
        Step("exactly again", now=exact),
        Step("years forward", now=NOW + timedelta(days=3650)),
        Step("back to now", now=NOW),
        Step("years forward, a dump dated between", add, now=NOW + timedelta(days=3650)),
        Step("back: it is in the future", now=NOW),
        Step("exactly its time, nothing told", lambda: [], now=between),
        Step("a second before it", lambda: [], now=between - timedelta(seconds=1)),
        Step("a year later, by a rescan", lambda: None, now=between + timedelta(days=365)),
    ]
    _attack(tmp_path, daemon_dumps, steps, _CONFIG)


def test_dumps_moved_renamed_and_folders_made_again(tmp_path: Path, daemon_dumps: Path) -> None:
    """A dump moved between sources, renamed, a file replaced by one of the same size with a
    new mtime, a source folder deleted and made again with other dumps, paths that are not
    dumps at all: told by file events, or found by a rescan."""
    dumps = daemon_dumps

    def move(old: str, new: str) -> list[str]:
        (dumps / old).rename(dumps / new)
        return [old, new]

    def same_size(rel: str) -> list[str]:
        path = dumps / rel
        data = path.read_bytes()
        path.write_bytes(data.replace(b"words", b"WORDS", 1))
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
        return [rel]

    def remade(source: str) -> list[str] | None:
        shutil.rmtree(dumps / source, ignore_errors=True)
        (dumps / source).mkdir()
        for i in range(3):
            when = datetime(2025, 1, 1 + i, tzinfo=UTC)
            _dump(dumps / source / f"{i:02}.md", f"{source} again {i}", when, f"<p>{i}</p>")
        return [f"{source}/{i:02}.md" for i in range(14)]

    def gone(source: str) -> list[str] | None:
        shutil.rmtree(dumps / source)
        return None

    steps = [
        Step("moved to the other source", lambda: move("s/13.md", "t/13b.md")),
        Step("renamed", lambda: move("t/12.md", "t/zz.md")),
        Step("renamed so it is no dump", lambda: move("t/zz.md", "t/zz.txt")),
        Step("same size, new mtime", lambda: same_size("s/11.md")),
        Step("same size, new mtime, found by a rescan", lambda: same_size("t/11.md") and None),
        Step("moved over a dump of the other source", lambda: move("s/09.md", "t/10.md")),
        Step(
            "paths that are no dumps",
            lambda: ["nosuch/x.md", "s/../t/00.md", "/etc/passwd", "s", "", "s/sub/x.md", "t/13b"],
        ),
        Step("a source folder made again", lambda: remade("s")),
        Step("a source gone, found by a rescan", lambda: gone("t")),
        Step("it comes back", lambda: remade("t")),
    ]
    _attack(tmp_path, dumps, steps, _CONFIG)


def _damage(state: Path, sql: str) -> None:
    db = sqlite3.connect(state / "index.sqlite3")
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


def test_an_index_damaged_between_builds(tmp_path: Path, daemon_dumps: Path) -> None:
    """A row broken between two builds (the daemon's of one new dump, which may not read it
    at all): what is published is a cold build's, whenever the damage is found."""
    state = tmp_path / "state"

    def new_and_damage(rel: str, sql: str) -> list[str]:
        _dump(daemon_dumps / rel, rel, datetime(2025, 5, 20, tzinfo=UTC), "<p>n</p>")
        _damage(state, sql)
        return [rel]

    steps = [
        Step("a shown row's title a blob", lambda: new_and_damage(
            "s/40.md", "UPDATE dumps SET title = x'ff00' WHERE rel = 's/12.md'")),
        Step("an archived row's source a number", lambda: new_and_damage(
            "t/40.md", "UPDATE dumps SET source = 7 WHERE rel = 't/02.md'")),
        Step("the content table dropped", lambda: new_and_damage(
            "s/41.md", "DROP TABLE content")),
        Step("a rescan after it", lambda: None),
        Step("an archive page's files not JSON, then a rescan", lambda: _damage(
            state, "UPDATE archive_pages SET files = 'x' WHERE feed = 's'")),
        Step("an archive page's files not a list, then a new dump", lambda: new_and_damage(
            "s/42.md", "UPDATE archive_pages SET files = '7' WHERE feed = 's'")),
        Step("an archive page's links a number, then a rescan", lambda: _damage(
            state, "UPDATE archive_pages SET older = 7 WHERE feed = 't'")),
        Step("a feed's archive state a blob, then a new dump", lambda: new_and_damage(
            "t/42.md", "UPDATE archive_feeds SET seen = x'00' WHERE feed = 't'")),
        Step("its settings a number, then a new dump", lambda: new_and_damage(
            "s/43.md", "UPDATE archive_feeds SET fingerprint = 5 WHERE feed = 's'")),
        Step("a dirty row's time text, then a new dump", lambda: new_and_damage(
            "s/44.md", "INSERT INTO archive_dirty VALUES ('s', 'soon', 'x')")),
    ]  # fmt: skip
    _attack(tmp_path, daemon_dumps, steps, _CONFIG)


def test_a_reload_that_changes_which_files_are_dumps(tmp_path: Path, daemon_dumps: Path) -> None:
    """``max_bytes`` lowered below shown and archived dumps' size, then raised again; the
    pattern narrowed and widened: the daemon's full build after a reload judges every file
    as a cold build does, though none of them changed."""
    small = {**_CONFIG, "max_bytes": 200}
    steps = [
        Step("max_bytes lowered", lambda: None, config=small),
        Step("a new dump after it", lambda: _new("s/50.md", "<p>" + "w " * 200 + "</p>")),
        Step("max_bytes raised again", lambda: None, config=_CONFIG),
        Step("pattern narrowed", lambda: None, config={**_CONFIG, "pattern": "1*.md"}),
        Step("pattern widened", lambda: None, config=_CONFIG),
    ]
    dumps = daemon_dumps

    def _new(rel: str, body: str) -> list[str]:
        _dump(dumps / rel, rel, datetime(2025, 5, 21, tzinfo=UTC), body)
        return [rel]

    _attack(tmp_path, dumps, steps, _CONFIG)


def _memo_sizes(builder: Any) -> dict[str, int]:
    """How much each memo of a Builder kept open holds."""
    from feedbridge import compress

    selections = builder._selections
    return {
        "selections": len(selections),
        "selected rows": sum(len(held.rows) for held in selections.values()),
        "fingerprints": sum(len(held.fingerprints) for held in selections.values()),
        "clean": len(builder._clean),
        "histories": len(builder.archiver._histories),
        "recent": len(builder.index._recent._items),
        "fragments": sum(len(f) for f in builder.fragments._slots.values()),
        "slots": len(builder.fragments._slots),
        "twins": len(compress._memo._pieces),
    }


def test_builds_of_nothing_and_sources_that_come_and_go_keep_memory_bounded(
    tmp_path: Path, daemon_dumps: Path
) -> None:
    """A daemon runs for months: builds with nothing changed hold what one build holds, and
    a source that appears and vanishes between rescans leaves nothing behind in any memo."""
    dumps, out, state = daemon_dumps, tmp_path / "out", tmp_path / "state"
    with open_builder(
        parse_config({**_CONFIG, "feeds": {}}), dumps=dumps, out=out, base_url=BASE_URL,
        state_dir=state, parallel=False,
    ) as (builder, _):  # fmt: skip
        builder.build(now=NOW)
        builder.build(now=NOW, paths=[])
        settled = _memo_sizes(builder)
        for i in range(20):
            builder.build(now=NOW + timedelta(minutes=i), paths=[])
            assert _memo_sizes(builder) == settled, i
        for i in range(12):
            rel = f"u{i}/00.md"
            (dumps / f"u{i}").mkdir()
            _dump(dumps / rel, f"u{i}", datetime(2025, 5, 1, tzinfo=UTC), "<p>u</p>")
            builder.build(now=NOW, paths=[rel])
            assert (out / f"u{i}" / "atom.xml").exists()
            shutil.rmtree(dumps / f"u{i}")
            builder.build(now=NOW, paths=[rel])
            assert not (out / f"u{i}").exists()
        after = _memo_sizes(builder)
        # The bodies and compressed pieces read lately are LRUs bounded by their capacity.
        lru = ("recent", "twins")
        grown = {k: (settled[k], v) for k, v in after.items() if v > settled[k] and k not in lru}
        assert not grown, grown
        assert builder.index._recent._size <= builder.index._recent._capacity


def _toml(config: dict[str, Any]) -> str:
    """The TOML of a config as the tests write it (top-level values, then ``[feeds.NAME]``)."""
    top = [f"{k} = {json.dumps(v)}" for k, v in config.items() if k != "feeds"]
    feeds = [
        f"[feeds.{name}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in feed.items())
        for name, feed in config.get("feeds", {}).items()
    ]
    return "\n".join(top) + "\n\n" + "\n\n".join(feeds) + "\n"


@pytest.mark.slow
def test_the_daemon_publishes_what_a_cold_build_does(tmp_path: Path, daemon_dumps: Path) -> None:
    """``feedbridge run`` itself, driven by file events and SIGHUP: after each change settles,
    OUT is byte for byte what a cold build in a new process makes of the same dumps."""
    dumps, out, state = daemon_dumps, tmp_path / "out", tmp_path / "state"
    config_file = tmp_path / "fb.toml"
    config = {**_CONFIG, "max_bytes": 100_000}
    config_file.write_text(_toml(config))
    big = "<p>" + "big " * 500 + "</p>"

    def settled(n: int) -> None:
        cold = tmp_path / f"cold{n}"

        def same() -> bool:
            shutil.rmtree(cold, ignore_errors=True)
            shutil.rmtree(cold.with_name(cold.name + "-state"), ignore_errors=True)
            _cold_build(config, dumps, cold, datetime.now(UTC), BASE_URL)
            return _files(cold) == _files(out)

        wait_for(same, timeout=30, what=f"step {n}: OUT as a cold build makes it")

    d = RunningDaemon(dumps, out, state, "--config", str(config_file), "--interval", "3600")
    try:
        settled(0)
        _dump(dumps / "s" / "60.md", "sixty", datetime(2025, 5, 1, tzinfo=UTC), big)
        wait_for(lambda: "sixty" in d.feed("s"), what="the new dump")
        settled(1)
        config = {**config, "max_bytes": 1500}  # s/60.md is now over the limit
        config_file.write_text(_toml(config))
        d.send(signal.SIGHUP)
        wait_for(lambda: "sixty" not in d.feed("s"), what="the reload of max_bytes")
        settled(2)
        config = {
            **config,
            "limit": 6,
            "feeds": {**_CONFIG["feeds"], "s": {"sources": ["s"], "archive": False}, "u": {
                "sources": ["s", "t"], "limit": 2}},
        }  # fmt: skip
        config_file.write_text(_toml(config))
        d.send(signal.SIGHUP)
        wait_for(lambda: "<feed" in d.feed("u"), what="the reload of feeds")
        settled(3)
        shown = dumps / "t" / "13.md"
        shown.write_bytes(shown.read_bytes() + b"<p>" + b"x" * 900 + b"\0</p>\n")
        wait_for(lambda: "t13" not in d.feed("t"), what="the broken body")
        settled(4)
    finally:
        assert d.stop() == 0, d.output()


def test_templates_edited_between_builds(tmp_path: Path, daemon_dumps: Path) -> None:
    """The user's templates folder changes under a running daemon, no reload: a template
    added over the package's, edited, edited back, removed; the stylesheet replaced."""
    from feedbridge import pages

    package = Path(pages.__file__).parent / "templates"
    mine = tmp_path / "templates"
    mine.mkdir()
    config = {**_CONFIG, "templates": str(mine)}
    entry = (package / "entry.html").read_text()

    def write(name: str, text: str) -> list[str]:
        (mine / name).write_text(text)
        return []

    def remove(name: str) -> list[str]:
        (mine / name).unlink()
        return []

    steps = [
        Step("a template over the package's", lambda: write("entry.html", "<b>A</b>" + entry)),
        Step("edited", lambda: write("entry.html", "<i>B</i>" + entry)),
        Step("edited back", lambda: write("entry.html", "<b>A</b>" + entry)),
        Step("removed", lambda: remove("entry.html")),
        Step("the stylesheet", lambda: write("style.css", "body { color: red }\n")),
        Step("and a rescan", lambda: None),
    ]
    _attack(tmp_path, daemon_dumps, steps, config)


def test_bodies_broken_later_in_the_archive_and_at_its_edge(
    tmp_path: Path, daemon_dumps: Path
) -> None:
    """Bodies found good once are rewritten with a NUL deep in them, header unchanged: an
    archived one, the newest archived (the feed's edge), one shown only by a feed without an
    archive; named by file events or found by a rescan; then mended."""
    dumps = daemon_dumps

    def nul(rel: str, named: bool = True) -> list[str] | None:
        path = dumps / rel
        st = path.stat()
        path.write_bytes(path.read_bytes() + b"<p>" + b"x" * 5000 + b"\0</p>\n")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        return [rel] if named else None

    def mend(rel: str) -> list[str]:
        path = dumps / rel
        st = path.stat()
        path.write_bytes(path.read_bytes().replace(b"\0", b""))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        return [rel]

    steps = [
        Step("an archived body", lambda: nul("s/03.md")),
        Step("the newest archived body", lambda: nul("s/09.md")),
        Step("an archived body, by a rescan", lambda: nul("t/05.md", named=False)),
        Step("the edge by a rescan", lambda: nul("t/09.md", named=False)),
        Step("mended", lambda: mend("s/09.md") + mend("t/05.md")),
        Step("a shown body in both feeds", lambda: nul("t/13.md")),
        Step("mended again", lambda: mend("t/13.md") + mend("s/03.md") + mend("t/09.md")),
    ]
    _attack(tmp_path, dumps, steps, _CONFIG)


def test_published_files_removed_or_edited_behind_its_back(
    tmp_path: Path, daemon_dumps: Path
) -> None:
    """A careless operator deletes or edits files in OUT between two builds of a daemon: a
    feed's files are put back by its next build, archive pages by its next rescan."""
    out = tmp_path / "out"

    def remove(*names: str) -> list[str]:
        for name in names:
            for path in out.glob(name):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        return []

    def edit(name: str) -> list[str]:
        path = out / name
        path.write_bytes(path.read_bytes() + b"<!-- edited -->")
        return []

    steps = [
        Step("a feed's twin removed", lambda: remove("s/atom.xml.gz")),
        Step("a feed edited", lambda: edit("t/rss.xml")),
        # Archive pages are checked by a full build (the daemon's rescans), as dumps are.
        Step("an archive page removed", lambda: remove("s/archive/2024-01-1.xml") or None),
        Step("an archive page edited", lambda: edit("t/archive/2024-01-1.html") or None),
        Step("the archive folder removed", lambda: remove("t/archive") or None),
        Step("the index page and the OPML removed", lambda: remove("index.html*", "feeds.opml*")),
    ]
    _attack(tmp_path, daemon_dumps, steps, _CONFIG)


def test_the_count_of_dumps_follows_a_build_that_had_to_scan_in_full(
    tmp_path: Path, daemon_dumps: Path
) -> None:
    """A daemon's build of one path that becomes a full one (damage found on the way, or a
    new max_bytes) counts the dumps as the full scan found them (status.json's ``dumps``),
    not by the one path: a file deleted with no event told is no longer counted."""
    state = tmp_path / "state"
    with open_builder(
        parse_config(_CONFIG), dumps=daemon_dumps, out=tmp_path / "out", base_url=BASE_URL,
        state_dir=state, parallel=False,
    ) as (builder, _):  # fmt: skip
        assert builder.build(now=NOW).archive == 28
        (daemon_dumps / "t" / "00.md").unlink()
        _dump(daemon_dumps / "s" / "80.md", "80", datetime(2025, 5, 1, tzinfo=UTC), "<p>80</p>")
        _damage(state, "UPDATE dumps SET title = x'ff00' WHERE rel = 's/12.md'")
        assert builder.build(now=NOW, paths=["s/80.md"]).archive == 28
        (daemon_dumps / "t" / "01.md").unlink()
        builder.target = replace(builder.target, config=parse_config({**_CONFIG, "max_bytes": 400}))
        _dump(daemon_dumps / "s" / "81.md", "81", datetime(2025, 5, 2, tzinfo=UTC), "<p>81</p>")
        assert builder.build(now=NOW, paths=["s/81.md"]).archive == 28 == builder.index.count()
