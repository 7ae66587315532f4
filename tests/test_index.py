"""The persistent index: incremental builds equal cold builds; bad state never crashes."""

from __future__ import annotations

import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbridge.config import Config, resolve_feeds
from feedbridge.errors import CorruptIndexError
from feedbridge.index import SCHEMA, Index, Row, db_row, from_db
from feedbridge.model import Provenance
from feedbridge.scan import HEAD_BYTES
from feedbridge.state import INDEX_NAME

from .conftest import BASE_URL, EXAMPLES, NOW
from .helpers import build, snapshot, target_args

SOURCES = ("voa", "nyt", "rfi")


def feed_bytes(out: Path) -> dict[str, bytes]:
    return {k: v[0] for k, v in snapshot(out).items()}


#: A small limit, so changes also move dumps into and out of the feeds.
SMALL = Config(limit=3)


def cold_build(
    dumps: Path, tmp: Path, now: datetime = NOW, config: Config | None = None
) -> dict[str, bytes]:
    fresh = tmp / f"cold-{os.urandom(4).hex()}"
    build(dumps, fresh / "out", config, state=fresh / "state", now=now)
    result = feed_bytes(fresh / "out")
    shutil.rmtree(fresh)
    return result


def dump_text(n: int, title: str, *, epoch_ms: int, body: str) -> str:
    return f"<!--{epoch_ms}-->\n[{title}](https://news.example.org/a/{n}.html)\n------\n\n{body}\n"


# -- incremental == from scratch --------------------------------------------------------------

operation = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(SOURCES), st.integers(0, 30), st.integers(0, 10**6)),
    st.tuples(st.just("edit"), st.sampled_from(SOURCES), st.integers(0, 30), st.integers(0, 10**6)),
    st.tuples(st.just("rename"), st.sampled_from(SOURCES), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.just("delete"), st.sampled_from(SOURCES), st.integers(0, 30), st.just(0)),
    st.tuples(st.just("touch"), st.sampled_from(SOURCES), st.integers(0, 30), st.just(0)),
    st.tuples(st.just("break"), st.sampled_from(SOURCES), st.integers(0, 30), st.just(0)),
    st.tuples(st.just("long"), st.sampled_from(SOURCES), st.integers(0, 30), st.integers(0, 10**6)),
)


def apply_op(dumps: Path, op: tuple[str, str, int, int], clock: list[int]) -> None:
    kind, source, n, arg = op
    folder = dumps / source
    path = folder / f"{n}.md"
    clock[0] += 1_000_000_000  # every write gets a distinct mtime, as real writes do
    if kind in ("add", "edit", "long"):
        body = "<p>" + ("长" * (HEAD_BYTES * 2) if kind == "long" else f"body {arg}") + "</p>"
        title = f"{kind} {source} {n} {arg}"
        path.write_text(dump_text(n % 7, title, epoch_ms=1_750_000_000_000 + arg * 1000, body=body))
    elif kind == "rename" and path.exists():
        path.replace(folder / f"{arg}.md")
        return
    elif kind == "delete":
        path.unlink(missing_ok=True)
        return
    elif kind == "break":
        path.write_bytes(b"not a dump\n")
    elif kind == "touch" and path.exists():
        pass
    else:
        return
    target = folder / f"{n}.md"
    os.utime(target, ns=(clock[0], clock[0]))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.lists(operation, min_size=1, max_size=6), min_size=1, max_size=4))
def test_incremental_builds_equal_a_cold_build(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[str, str, int, int]]]
) -> None:
    tmp = tmp_path_factory.mktemp("inc")
    dumps = tmp / "dumps"
    shutil.copytree(EXAMPLES, dumps)
    out, state = tmp / "out", tmp / "state"
    build(dumps, out, SMALL, state=state)
    clock = [1_700_000_000 * 10**9]
    for batch in batches:
        for op in batch:
            apply_op(dumps, op, clock)
        build(dumps, out, SMALL, state=state)
        assert feed_bytes(out) == cold_build(dumps, tmp, config=SMALL)


# -- robust state -----------------------------------------------------------------------------


def test_deleted_state_means_a_cold_build_with_identical_bytes(tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    build(EXAMPLES, out, state=state)
    before = snapshot(out)
    shutil.rmtree(state)
    report = build(EXAMPLES, out, state=state)
    assert report.parsed == report.scanned > 0
    assert snapshot(out) == before  # same bytes, and not even rewritten


@pytest.mark.parametrize("damage", ["garbage", "truncate", "foreign-table", "empty"])
def test_corrupt_or_foreign_index_is_set_aside_and_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    build(EXAMPLES, out, state=state)
    before = feed_bytes(out)
    db = state / INDEX_NAME
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    elif damage == "truncate":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    elif damage == "foreign-table":
        db.unlink()
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE something (x)")
        con.commit()
        con.close()
    else:
        db.write_bytes(b"")
    report = build(EXAMPLES, out, state=state)
    assert report.scanned > 0 and report.parsed == report.scanned
    assert feed_bytes(out) == before
    if damage in ("garbage", "foreign-table"):
        assert any("index" in r.getMessage() for r in caplog.records)
    if damage == "garbage":
        assert list(state.glob(f"{INDEX_NAME}.corrupt-*"))


def test_index_from_another_version_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    build(EXAMPLES, out, state=state)
    con = sqlite3.connect(state / INDEX_NAME)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA + 99),))
    con.commit()
    con.close()
    report = build(EXAMPLES, out, state=state)
    assert report.parsed == report.scanned > 0
    assert any("another version" in r.getMessage() for r in caplog.records)


def test_index_for_another_output_is_rebuilt(tmp_path: Path) -> None:
    state = tmp_path / "state"
    build(EXAMPLES, tmp_path / "a", state=state)
    report = build(EXAMPLES, tmp_path / "b", state=state)
    assert report.parsed == report.scanned > 0
    assert feed_bytes(tmp_path / "a") == feed_bytes(tmp_path / "b")


def test_unchanged_rebuild_reads_no_dump(tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    build(EXAMPLES, out, state=state)
    report = build(EXAMPLES, out, state=state)
    assert (report.scanned, report.parsed, report.written) == (10, 0, ())


def test_concurrent_builds_never_share_the_index(tmp_path: Path) -> None:
    """Two processes on one output: one builds, the other is refused with exit 2."""
    dumps = tmp_path / "dumps"
    shutil.copytree(EXAMPLES, dumps)
    args = ["build", *target_args(dumps, tmp_path / "out", tmp_path / "state")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "feedbridge", *args], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        if p.stderr:
            p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and set(codes) <= {0, 2}
    for code, err in results:
        if code == 2:
            # The pid, unless the holder is between taking the lock and writing it down.
            assert re.search(r"is in use by (pid \d+|another process)", err), err
    assert feed_bytes(tmp_path / "out") == cold_build(dumps, tmp_path)


@pytest.mark.parametrize(
    ("broken", "reason"),
    [(b"\0", "NUL"), (b"\xff", "UTF-8"), (b"\xe6\x97", "UTF-8")],
)
@pytest.mark.parametrize("offset", [10, HEAD_BYTES - 100, HEAD_BYTES * 2])
def test_a_broken_body_is_judged_when_it_is_read(
    tmp_path: Path, broken: bytes, reason: str, offset: int
) -> None:
    """Scans judge the header lines only.  A dump whose body is broken (wherever it is) is
    rejected when its body is read for a feed, and the feed takes the next dump instead; an
    old one that no feed shows is reported by ``check``, which reads everything."""
    dumps = tmp_path / "dumps"
    (dumps / "s").mkdir(parents=True)
    for n in range(5):
        body = ("<p>" + "x" * HEAD_BYTES * 3 + "</p>").encode()
        if n in (0, 4):
            body = body[:offset] + broken + body[offset:]
        text = dump_text(n, f"t{n}", epoch_ms=1_600_000_000_000 + n * 1000, body="")
        (dumps / "s" / f"{n}.md").write_bytes(text.encode() + body)
    config = Config(limit=2, archive=False)  # an archive reads every body (test_archive.py)
    report = build(dumps, tmp_path / "out", config)
    atom = (tmp_path / "out" / "s" / "atom.xml").read_text()
    assert "a/4.html" not in atom and "a/3.html" in atom and "a/2.html" in atom
    assert [(Path(r.path).name, reason in r.reason, r.line) for r in report.rejected] == [
        ("4.md", True, 6)
    ]
    checked = subprocess.run(
        [sys.executable, "-m", "feedbridge", "check", "--dumps", str(dumps)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1
    assert f"{dumps / 's' / '0.md'}:6: " in checked.stdout
    assert f"{dumps / 's' / '4.md'}:6: " in checked.stdout


def test_long_title_line_beyond_the_head_is_read_whole(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    (dumps / "s").mkdir(parents=True)
    title = "很长的标题" * (HEAD_BYTES // 5)
    (dumps / "s" / "a.md").write_text(
        dump_text(1, title, epoch_ms=1_600_000_000_000, body="<p>x</p>")
    )
    report = build(dumps, tmp_path / "out")
    assert report.rejected == ()
    assert title in (tmp_path / "out" / "s" / "atom.xml").read_text()


def test_in_memory_index_works(tmp_path: Path) -> None:
    index = Index(None, root=tmp_path, out=tmp_path)
    assert index.count() == 0
    index.close()


def test_no_build_imports_what_it_does_not_need(tmp_path: Path) -> None:
    """A build with nothing to render does not import feedgen, lxml, nh3, feedparser, bs4,
    jinja2 or APScheduler, nor what only fallbacks need (start-up time is part of every build)."""
    out, state = tmp_path / "out", tmp_path / "state"
    build(EXAMPLES, out, state=state)
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['feedbridge', '-q', 'build', '--dumps', {str(EXAMPLES)!r}, '--out', "
        f"{str(out)!r}, '--base-url', {BASE_URL!r}, '--state', {str(state)!r}]\n"
        "try:\n    runpy.run_module('feedbridge', run_name='__main__')\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = {'feedgen', 'lxml', 'nh3', 'feedparser', 'bs4', 'apscheduler', 'watchfiles',"
        " 'whitenoise', 'waitress', 'http.client', 'email.utils', 'multiprocessing.pool',"
        " 'jinja2'}\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_now_is_timezone_aware() -> None:
    assert NOW.tzinfo is UTC


def test_parallel_workers_build_the_same_bytes_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large scans fork workers that store their own rows, and bodies are cleaned in workers;
    forced on for a small corpus, the result must equal the one-process build, also after
    changes and deletions."""
    from feedbridge import build as build_module
    from feedbridge import scan as scan_module

    from .helpers import make_corpus

    dumps = make_corpus(tmp_path / "dumps")
    serial = cold_build(dumps, tmp_path)
    monkeypatch.setattr(scan_module, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(build_module, "PARALLEL_MIN_BODIES", 1)
    out, state = tmp_path / "out", tmp_path / "state"
    report = build(dumps, out, state=state)
    assert report.parsed == report.scanned > 100
    assert feed_bytes(out) == serial
    assert len(report.rejected) == 6 and len(report.fallbacks) == 4

    (dumps / "voa" / "1008880.md").unlink()
    edited = dumps / "nyt" / "1041950.md"
    edited.write_text(edited.read_text("utf-8").replace("变脸", "改变", 1), "utf-8")
    report = build(dumps, out, state=state)
    assert report.parsed == 1
    monkeypatch.undo()
    assert feed_bytes(out) == cold_build(dumps, tmp_path)


def test_scan_workers_build_the_feeds_of_single_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parallel scan builds, per source, the feeds that show only that source (cleaning
    their bodies as it goes); the parent then renders only the multi-source feed and cleans
    only what no single-source feed had.  Bytes and report equal a one-process build."""
    from feedbridge import build as build_module
    from feedbridge import scan as scan_module
    from feedbridge.model import FeedSpec

    from .helpers import make_corpus

    dumps = make_corpus(tmp_path / "dumps")
    config = Config(
        limit=5,
        feeds=(FeedSpec("all", "All", ("voa", "rfi"), limit=12, archive=False),),
        archive=False,  # archived feeds link to pages known only after the scan
    )
    fresh = tmp_path / "serial"
    serial_report = build(dumps, fresh / "out", config, state=fresh / "state")
    serial = feed_bytes(fresh / "out")

    prefetched: list[Row] = []
    rendered_here: list[str] = []
    prefetch, build_feed = build_module.Builder._prefetch, build_module.Builder._build_feed

    def spy_prefetch(self: build_module.Builder, rows: list[Row]) -> None:
        prefetched.extend(rows)  # recorded in this process only, not in forked workers
        prefetch(self, rows)

    def spy_build_feed(
        self: build_module.Builder, plan: build_module.FeedPlan, now: int
    ) -> tuple[build_module.FeedResult, list[str]]:
        if not plan.current:
            rendered_here.append(plan.spec.name)
        return build_feed(self, plan, now)

    monkeypatch.setattr(build_module.Builder, "_prefetch", spy_prefetch)
    monkeypatch.setattr(build_module.Builder, "_build_feed", spy_build_feed)
    monkeypatch.setattr(scan_module, "PARALLEL_MIN_FILES", 1)
    out, state = tmp_path / "out", tmp_path / "state"
    report = build(dumps, out, config, state=state)
    assert feed_bytes(out) == serial
    assert rendered_here == ["all"]
    written = {Path(p).relative_to(out) for p in report.written}
    assert written == {Path(p).relative_to(fresh / "out") for p in serial_report.written}
    assert [(f.name, f.entries) for f in report.feeds] == [
        (f.name, f.entries) for f in serial_report.feeds
    ]

    index = Index(state / INDEX_NAME, root=dumps, out=out)
    try:
        specs = resolve_feeds(config, scan_module.list_sources(dumps))
        shown = {
            spec.name: build_module.select(index, spec, int(NOW.timestamp())) for spec in specs
        }
    finally:
        index.close()
    own = {r.rel for name, rows in shown.items() if name != "all" for r in rows}
    assert {r.rel for r in prefetched} == {r.rel for r in shown["all"]} - own
    assert prefetched


def test_fast_header_path_stores_the_same_rows_as_the_full_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedbridge import scan as scan_module

    from .helpers import make_corpus

    dumps = make_corpus(tmp_path / "dumps")

    def rows(state: Path) -> list[tuple[object, ...]]:
        build(dumps, tmp_path / f"out-{state.name}", state=state)
        con = sqlite3.connect(state / INDEX_NAME)
        try:
            return con.execute("SELECT * FROM dumps ORDER BY rel").fetchall()
        finally:
            con.close()

    fast = rows(tmp_path / "fast")
    monkeypatch.setattr(scan_module, "plain_head", lambda data, complete: None)
    slow = rows(tmp_path / "slow")
    assert fast == slow
    assert len(fast) > 100


# -- the dumps table ---------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=12)
rows = st.builds(
    Row,
    rel=st.sampled_from(["a/1.md", "a/2.md", "b/1.md", "a-b/1.md", "a/b.md"]),
    source=st.sampled_from(["a", "b", "a-b"]),
    size=st.integers(0, 2**40),
    mtime_ns=st.integers(0, 2**62),
    id=st.none() | text,
    url=st.none() | text,
    title=st.none() | text,
    published=st.none(),
    provenance=st.none() | st.sampled_from([p.value for p in Provenance]),
    warnings=st.lists(text, max_size=3).map(tuple),
    line=st.integers(0, 9),
    reason=st.none() | text,
)
web = st.builds(lambda scheme, rest: scheme + rest, st.sampled_from(["http://", "HTTPS://"]), text)
#: Rows of accepted dumps: a time a datetime holds, an http(s) id and URL, a title.
accepted = st.builds(
    replace,
    rows,
    id=web,
    url=web,
    title=text,
    published=st.integers(-62_135_596_800, 253_402_300_799),
)


@given(rows | accepted)
def test_rows_survive_the_table_encoding(row: Row) -> None:
    assert from_db(db_row(row)) == row


@given(accepted, st.sampled_from(["id", "url", "title", "published"]), st.data())
def test_a_row_no_scan_writes_is_damage(row: Row, field: str, data: st.DataObject) -> None:
    """An accepted dump's row without its URL, or with one that is not http(s), or with a
    time no datetime holds: only damage writes it, and the build must set the index aside."""
    impossible = {
        "id": st.none() | st.just("javascript:alert(1)"),
        "url": st.none() | st.just("x"),
        "title": st.none(),
        "published": st.sampled_from([2**63 - 1, -(2**63), 253_402_300_800]),
    }
    with pytest.raises(CorruptIndexError):
        from_db(db_row(replace(row, **{field: data.draw(impossible[field])})))


def _row(rel: str, published: int | None, **kw: Any) -> Row:
    source = rel.partition("/")[0]
    url = f"https://news.example.org/{rel}"
    return replace(Row(rel, source, 1, 1, url, url, rel, published, "epoch"), **kw)


def test_newest_merges_sources_by_time_then_path(tmp_path: Path) -> None:
    index = Index(None, root=tmp_path, out=tmp_path / "out")
    rows = [
        _row("a/1.md", 100),
        _row("a/2.md", 300),
        _row("b/1.md", 300),
        _row("b/2.md", 200),
        _row("ab/1.md", 250),
        _row("a0/1.md", 400),
        _row("b/3.md", 900),
        _row("a/bad.md", None, provenance=None, line=2, reason="broken"),
        _row("b/old.md", 50, provenance="mtime", warnings=("b/old.md:1: no date",)),
    ]
    index.apply(rows, [])
    order = [r.rel for r in index.newest(["b", "a", "ab"], 300)]
    assert order == ["b/1.md", "a/2.md", "ab/1.md", "b/2.md", "a/1.md", "b/old.md"]
    assert [r.rel for r in index.newest(["a"], 10**6)] == ["a/2.md", "a/1.md"]
    assert [r.rel for r in index.future(300)] == ["a0/1.md", "b/3.md"]
    assert index.sources() == ["a", "a0", "ab", "b"]
    assert [r.rel for r in index.rejected()] == ["a/bad.md"]
    assert [r.rel for r in index.fallbacks()] == ["b/old.md"]
    assert index.source_counts() == {"a": 3, "a0": 1, "ab": 1, "b": 4}
    index.apply([], ["b/1.md", "a0/1.md"])
    assert index.sources() == ["a", "ab", "b"]
    assert [r.rel for r in index.newest(["a", "b"], 300)][:2] == ["a/2.md", "b/2.md"]


# -- damage found while building ---------------------------------------------------------------


def _corrupt_btree(db: Path, name: str) -> None:
    """Overwrite a leaf page of one b-tree (a table or an index) with random bytes: the open
    check (which counts rows through the smallest index) does not see it, a query does."""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = con.execute("PRAGMA page_size").fetchone()[0]
        pages = [
            r[0]
            for r in con.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
                (name,),
            )
        ]
    finally:
        con.close()
    page = pages[len(pages) // 2]
    data = bytearray(db.read_bytes())
    data[(page - 1) * size + 8 : page * size - 8] = random.Random(page).randbytes(size - 16)
    db.write_bytes(bytes(data))


def _sql(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db)
    try:
        for sql in statements:
            con.execute(sql)
        con.commit()
    finally:
        con.close()


#: A dump every feed of the corpus shows (the newest of voa), whose row a build reads.
SHOWN = "(SELECT rel FROM dumps WHERE source = 'voa' ORDER BY published DESC LIMIT 1)"

DAMAGE: dict[str, Any] = {
    "dumps pages": lambda db: _corrupt_btree(db, "dumps"),
    "dumps index pages": lambda db: _corrupt_btree(db, "dumps_newest"),
    "content pages": lambda db: _corrupt_btree(db, "content"),
    "feeds pages": lambda db: _corrupt_btree(db, "feeds"),
    "title is a blob": lambda db: _sql(db, f"UPDATE dumps SET title = x'ff00' WHERE rel = {SHOWN}"),
    "published is text": lambda db: _sql(
        db, f"UPDATE dumps SET published = 'soon' WHERE rel = {SHOWN}"
    ),
    "size is text": lambda db: _sql(db, f"UPDATE dumps SET size = 'big' WHERE rel = {SHOWN}"),
    "extra is not JSON": lambda db: _sql(db, f"UPDATE dumps SET extra = '[' WHERE rel = {SHOWN}"),
    "extra has the wrong shape": lambda db: _sql(
        db, f"""UPDATE dumps SET extra = '{{"a": 1}}' WHERE rel = {SHOWN}"""
    ),
    "unknown provenance": lambda db: _sql(
        db, f"""UPDATE dumps SET extra = '["psychic", [], 0, null]' WHERE rel = {SHOWN}"""
    ),
    "source is a number": lambda db: _sql(db, f"UPDATE dumps SET source = 7 WHERE rel = {SHOWN}"),
    "feed files not JSON": lambda db: _sql(db, "UPDATE feeds SET files = '{'"),
    "feed entries text": lambda db: _sql(db, "UPDATE feeds SET entries = 'many'"),
    "content html a blob": lambda db: _sql(db, "UPDATE content SET html = x'ff'"),
    "table dropped": lambda db: _sql(db, "DROP TABLE content"),
    "published past datetime": lambda db: _sql(
        db, f"UPDATE dumps SET published = 9223372036854775807 WHERE rel = {SHOWN}"
    ),
    "published before datetime": lambda db: _sql(
        db, f"UPDATE dumps SET published = -9223372036854775808 WHERE rel = {SHOWN}"
    ),
    "url missing": lambda db: _sql(db, f"UPDATE dumps SET url = NULL WHERE rel = {SHOWN}"),
    "id not a URL": lambda db: _sql(db, f"UPDATE dumps SET id = 'x:y' WHERE rel = {SHOWN}"),
    "title not UTF-8": lambda db: _sql(
        db, f"UPDATE dumps SET title = CAST(x'ff' AS TEXT) WHERE rel = {SHOWN}"
    ),
    "feed files not UTF-8": lambda db: _sql(db, "UPDATE feeds SET files = CAST(x'ff' AS TEXT)"),
    "column added": lambda db: _sql(db, "ALTER TABLE dumps ADD COLUMN spare"),
    "truncated": lambda db: db.write_bytes(db.read_bytes()[: len(db.read_bytes()) // 2]),
    "garbage WAL": lambda db: Path(f"{db}-wal").write_bytes(b"\x37\x7f\x06\x82" + b"junk" * 2000),
    "garbage SHM": lambda db: Path(f"{db}-shm").write_bytes(b"junk" * 8192),
}


#: Damage a build repairs as it goes, without noticing: a size, or a source that does not
#: compare equal only makes the file be read again; SQLite ignores a WAL whose checksums
#: fail and rebuilds a shared-memory file.
HEALS = {"size is text", "source is a number", "garbage WAL", "garbage SHM"}


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_index_damage_is_recovered_with_the_bytes_of_a_clean_build(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: str,
    parallel: bool,
) -> None:
    """Wherever the build meets the damage (opening, scanning -- in a worker too --,
    selecting, reading cached content or feed states), it sets the index aside, rebuilds from
    the dumps with one warning and publishes exactly what a clean build does."""
    from feedbridge import scan as scan_module

    from .helpers import make_corpus

    if parallel:
        monkeypatch.setattr(scan_module, "PARALLEL_MIN_FILES", 1)
    dumps = make_corpus(tmp_path / "dumps")
    out, state = tmp_path / "out", tmp_path / "state"
    build(dumps, out, state=state)
    clean = feed_bytes(out)
    # A new dump and a removed feed file: the build must scan, select and render.
    (dumps / "voa" / "new.md").write_text(
        dump_text(99, "Newest", epoch_ms=1_760_000_000_000, body="<p>new</p>")
    )
    (out / "voa" / "atom.xml").unlink()
    DAMAGE[damage](state / INDEX_NAME)
    caplog.clear()
    report = build(dumps, out, state=state)
    assert feed_bytes(out) == cold_build(dumps, tmp_path)
    assert feed_bytes(out) != clean
    assert len(report.rejected) == 6
    index_warnings = [r.getMessage() for r in caplog.records if r.name == "feedbridge.index"]
    assert len(index_warnings) == (damage not in HEALS), index_warnings
    again = build(dumps, out, state=state)  # and the rebuilt index is sound
    assert again.parsed == 0 and again.written == ()


def _shown(rel: str) -> Row:
    return Row(rel, rel.partition("/")[0], 10, 20, rel, f"https://example.org/{rel}", "t", 1)


def test_bodies_read_lately_come_from_memory_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon reads the same feeds' bodies for every new dump: an index keeps those it
    read lately (least recently used first out, a bounded number of characters) and still
    reads a body whose file changed, and forgets them all when it is reset."""
    from feedbridge import index as index_module
    from feedbridge.model import Content

    monkeypatch.setattr(index_module, "_RECENT_CHARS", 3 * (1200 + 200))  # three bodies
    index = Index(None, root=tmp_path, out=tmp_path)
    rows = [_shown(f"s/{i}.md") for i in range(5)]
    index.apply(rows, [])
    index.store_content([(r, Content(r.rel * 200, "", None, None)) for r in rows])
    queries: list[str] = []
    index.db.set_trace_callback(queries.append)
    first = index.contents(rows[:3])
    assert queries and set(first) == {r.rel for r in rows[:3]}
    queries.clear()
    assert index.contents(rows[:3]) == first and index.content(rows[0]) == first[rows[0].rel]
    assert not queries  # all three from memory
    index.contents(rows[3:])  # two more: the two least recently used of the first three go
    queries.clear()
    assert index.contents([rows[0]]) == {rows[0].rel: first[rows[0].rel]} and not queries
    assert index.contents([rows[1]]) and queries  # read again
    changed = replace(rows[0], size=11)  # the file changed: the body kept is not its body
    queries.clear()
    assert index.contents([changed]) == {} and index.content(changed) is None and queries
    index.reset(CorruptIndexError("test"))
    assert index.contents(rows) == {}  # an index started again holds nothing, in memory neither
    index.close()
