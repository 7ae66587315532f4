"""RFC 5005 archive documents: complete, valid, linked, and stable under the common changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from benchmarks.corpus import generate
from feedbridge.app import open_builder
from feedbridge.archive import (
    MAX_BYTES,
    MAX_ENTRIES,
    PAGE_BUDGET,
    cut_month,
    entry_cost,
    fit,
    month_bounds,
    month_of,
    shrink,
)
from feedbridge.config import Config, FeedSpec
from feedbridge.model import Content, Entry

from .conftest import BASE_URL, NOW, SPEC
from .helpers import build, expected_entries, make_corpus, snapshot

ATOM = "{http://www.w3.org/2005/Atom}"
FH = "{http://purl.org/syndication/history/1.0}"


def _local(out: Path, url: str) -> Path:
    assert url.startswith(BASE_URL), url
    return out / url[len(BASE_URL) :]


def _link(root: etree._Element, rel: str) -> str | None:
    links = [e.get("href") for e in root.findall(f"{ATOM}link") if e.get("rel") == rel]
    assert len(links) <= 1, (rel, links)
    return links[0] if links else None


def walk_atom(out: Path, feed: str) -> list[tuple[Path, etree._Element]]:
    """The archive documents met walking ``prev-archive`` from ``feed/atom.xml``, newest first,
    checking RFC 5005's placement of every element on the way."""
    root = etree.parse(str(out / feed / "atom.xml")).getroot()
    assert root.find(f"{FH}archive") is None  # the subscription document is not an archive
    docs: list[tuple[Path, etree._Element]] = []
    url = _link(root, "prev-archive")
    newer: str | None = None
    seen: set[str] = set()
    while url is not None:
        assert url not in seen, f"prev-archive loops at {url}"
        seen.add(url)
        path = _local(out, url)
        page = etree.parse(str(path)).getroot()
        assert page.tag == f"{ATOM}feed"
        archive = [child for child in page if child.tag == f"{FH}archive"]
        assert len(archive) == 1 and len(page.findall(f".//{FH}archive")) == 1, path
        assert _link(page, "current") == f"{BASE_URL}{feed}/atom.xml"
        assert _link(page, "self") == url
        assert _link(page, "next-archive") == newer, path
        assert path.stat().st_size <= MAX_BYTES
        docs.append((path, page))
        newer = url
        url = _link(page, "prev-archive")
    return docs


def collected_entries(out: Path, feed: str) -> list[tuple[str, str, str, str]]:
    """(id, title, link, published) of every entry a reader collects from a feed: its
    ``atom.xml``, then every archive page walking ``prev-archive``."""
    got = []
    feed_root = etree.parse(str(out / feed / "atom.xml")).getroot()
    for page in (feed_root, *(page for _, page in walk_atom(out, feed))):
        for entry in page.findall(f"{ATOM}entry"):
            link = entry.find(f"{ATOM}link")
            assert link is not None
            got.append(
                (
                    entry.findtext(f"{ATOM}id") or "",
                    entry.findtext(f"{ATOM}title") or "",
                    link.get("href") or "",
                    entry.findtext(f"{ATOM}published") or "",
                )
            )
    return got


def walk_json(out: Path, feed: str) -> list[str]:
    """Ids of the items of ``feed/feed.json`` and of the archive pages met following
    ``next_url`` from it."""
    first = json.loads((out / feed / "feed.json").read_text())
    ids: list[str] = [item["id"] for item in first["items"]]
    url = first.get("next_url")
    while url:
        page = json.loads(_local(out, url).read_text())
        ids.extend(item["id"] for item in page["items"])
        url = page.get("next_url")
    return ids


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def corpus_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("archive")
    dumps = make_corpus(root / "dumps")
    out = root / "out"
    # Feeds of three entries: every source of the corpus has older ones, on archive pages.
    build(dumps, out, Config(limit=3), state=root / "state")
    return dumps, out


def test_walking_prev_archive_yields_every_dump_exactly_once(
    corpus_build: tuple[Path, Path],
) -> None:
    dumps, out = corpus_build
    for folder in sorted(p for p in dumps.iterdir() if p.is_dir()):
        want = expected_entries(folder, limit=10**9)
        assert want, folder
        got = collected_entries(out, folder.name)
        assert sorted(got) == sorted((e.id, e.title, e.url, _rfc3339(e.published)) for e in want), (
            folder.name
        )
        assert len(want) <= 3 or walk_atom(out, folder.name), folder.name
        assert len({g[0] for g in got}) == len(got)
        assert sorted(walk_json(out, folder.name)) == sorted(e.id for e in want)


def test_every_archive_document_passes_the_atom_schema_and_rules(
    corpus_build: tuple[Path, Path],
) -> None:
    pages = sorted(str(p) for p in corpus_build[1].glob("*/archive/*.xml"))
    assert len(pages) > 20
    if shutil.which("jing") is None:
        pytest.fail("jing is not installed (Debian package 'jing')")
    for args in (["-c", str(SPEC / "atom.rnc")], [str(SPEC / "atom-rules.sch")]):
        result = subprocess.run(
            ["jing", *args, *pages], check=False, capture_output=True, text=True
        )
        errors = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if "Unable to locate" not in line
        ]
        assert result.returncode == 0 and not errors, "\n".join(errors[:20])


def test_feeds_link_to_the_newest_archive_page(corpus_build: tuple[Path, Path]) -> None:
    out = corpus_build[1]
    atom = etree.parse(str(out / "voa" / "atom.xml")).getroot()
    newest = _link(atom, "prev-archive")
    assert newest is not None and newest == walk_atom(out, "voa")[0][0].as_uri().replace(
        (out.as_uri() + "/"), BASE_URL
    )
    rss = etree.parse(str(out / "voa" / "rss.xml")).getroot()
    links = rss.findall(f"channel/{ATOM}link[@rel='prev-archive']")
    assert [e.get("href") for e in links] == [newest]
    assert json.loads((out / "voa" / "feed.json").read_text())["next_url"] == newest.replace(
        ".xml", ".json"
    )


def walk_html(out: Path, feed: str) -> list[tuple[str, str]]:
    """(title, link) of every entry met following the archive link of the feed's web page and
    then every "older" link, checking that every link on the way leads to a page."""
    from bs4 import BeautifulSoup

    folder = out / feed
    soup = BeautifulSoup((folder / "index.html").read_text("utf-8"), "html.parser")
    link = soup.select_one("p.archive a")
    assert link is not None
    total = int(link.text.split("archive, ")[1].split()[0])
    path = (folder / str(link["href"])).resolve()
    got: list[tuple[str, str]] = [
        (str(a.text), str(a["href"])) for a in soup.select("li.entry h3 a")
    ]
    seen: set[Path] = set()
    newer: Path | None = None
    while True:
        assert path.is_file() and path not in seen, path
        seen.add(path)
        page = BeautifulSoup(path.read_text("utf-8"), "html.parser")
        got.extend((str(a.text), str(a["href"])) for a in page.select("li.entry h3 a"))
        for a in page.select("nav a"):
            target = (path.parent / str(a["href"])).resolve()
            assert (target / "index.html" if a["href"].endswith("/") else target).is_file(), a
        back = page.select_one("nav.pager a[rel=next]")
        assert (newer is None) == (back is None)
        assert back is None or (path.parent / str(back["href"])).resolve() == newer
        older = page.select_one("nav.pager a[rel=prev]")
        if older is None:
            break
        newer, path = path, (path.parent / str(older["href"])).resolve()
    assert len(seen) == len(list((out / feed / "archive").glob("*.xml")))
    assert len(got) == total
    return got


def test_the_web_archive_is_one_chain_from_the_feed_page(corpus_build: tuple[Path, Path]) -> None:
    dumps, out = corpus_build
    for folder in sorted(p for p in dumps.iterdir() if p.is_dir()):
        want = expected_entries(folder, limit=10**9)
        got = walk_html(out, folder.name)
        assert sorted(url for _, url in got) == sorted(e.url for e in want)
    index = (out / "index.html").read_text("utf-8")
    assert f'href="voa/archive/{walk_atom(out, "voa")[0][0].stem}.html"' in index


# -- a generated archive, changed the common ways ------------------------------------------


def _generated(root: Path, count: int) -> Path:
    """``count`` generated dumps, plus a source of 450 in one month (more than a page holds)."""
    dumps = root / "dumps"
    generate(dumps, count, seed=7)
    (dumps / "dense").mkdir()
    start = datetime(2024, 3, 1, tzinfo=UTC)
    for i in range(450):
        when = start + timedelta(hours=i)
        _write_dump(dumps / "dense" / f"{i}.md", f"https://example.org/d{i}", f"d{i}", when)
    return dumps


def _write_dump(path: Path, url: str, title: str, when: datetime) -> None:
    epoch = int(when.timestamp()) * 1000
    path.write_text(f"<!--{epoch}-->\n[{title}]({url})\n------\n\n<p>{title} body</p>\n")
    os.utime(path, (when.timestamp(), when.timestamp()))


def _changed(before: dict[str, tuple[bytes, int]], after: dict[str, tuple[bytes, int]]) -> set[str]:
    """Files whose bytes or mtime changed (their ``.gz`` twins checked alike; archive pages
    have none)."""
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    plain = {name for name in changed if not name.endswith(".gz")}
    twinned = {name for name in plain if "/archive/" not in name} - {"feeds.opml"}
    assert {name.removesuffix(".gz") for name in changed - plain} == twinned
    return plain


def _newest_dump(folder: Path) -> datetime:
    return max(e.published for e in expected_entries(folder, limit=1))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("generated")
    return _generated(root, 3000)


def test_a_generated_archive_is_complete_and_every_page_fits(
    generated: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    build(generated, out, state=tmp_path / "state")
    for folder in sorted(generated.iterdir()):
        want = expected_entries(folder, limit=10**9)
        got = collected_entries(out, folder.name)
        assert sorted(g[0] for g in got) == sorted(e.id for e in want)
        assert sorted(walk_json(out, folder.name)) == sorted(e.id for e in want)
    sizes = [p.stat().st_size for p in out.glob("*/archive/*")]
    assert max(sizes) <= MAX_BYTES
    dense = {p.name for p in (out / "dense" / "archive").glob("*.xml")}
    # 450 entries: the feed shows 50, the archive the other 400 on 8 pages of 50
    assert dense == {f"2024-03-{part}.xml" for part in range(1, 9)}


def test_common_changes_touch_only_their_pages(generated: Path, tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    shutil.copytree(generated, dumps)
    out, state = tmp_path / "out", tmp_path / "state"
    now = NOW
    build(dumps, out, state=state, now=now)
    before = snapshot(out)
    voa = dumps / "voa"
    newest = _newest_dump(voa)
    pages = [p for p, _ in walk_atom(out, "voa")]

    # 1. A new dump newer than all others: the feed files and the newest page only.
    _write_dump(voa / "new.md", "https://example.org/new", "newest", newest + timedelta(seconds=1))
    build(dumps, out, state=state, now=now)
    after = snapshot(out)
    changed = _changed(before, after)
    newest_page = str(pages[0].relative_to(out))
    assert changed == {
        "index.html",  # the newest titles
        "voa/index.html",
        "voa/atom.xml",
        "voa/rss.xml",
        "voa/feed.json",
        newest_page,
        newest_page.replace(".xml", ".json"),
        newest_page.replace(".xml", ".html"),
    }, changed

    # 2. An old dump edited: only pages of its month.
    old = sorted(expected_entries(voa, limit=10**9), key=lambda e: e.published)[5]
    text = old.path.read_text().replace("------", "------\n\n<p>edited</p>", 1)
    old.path.write_text(text)
    before, after = after, (build(dumps, out, state=state, now=now), snapshot(out))[1]
    month = month_of(old.published)
    changed = _changed(before, after)
    assert changed and all(name.startswith(f"voa/archive/{month}-") for name in changed), changed

    # 3. An old dump deleted: only pages of its month (and the pages linking to them, if the
    # month lost a page).
    old.path.unlink()
    before, after = after, (build(dumps, out, state=state, now=now), snapshot(out))[1]
    changed = _changed(before, after) - {"index.html", "voa/index.html"}  # the count in all
    months = {name.split("/")[-1][:7] for name in changed}
    assert month in months and len(changed) <= 9, changed
    assert all(name.startswith("voa/archive/") for name in changed), changed

    # 4. A from-scratch build gives the same bytes.
    fresh = tmp_path / "fresh"
    build(dumps, fresh, state=tmp_path / "fresh-state", now=now)
    assert {k: v[0] for k, v in snapshot(fresh).items()} == {k: v[0] for k, v in after.items()}


def test_a_new_page_rewrites_only_the_page_before_it_besides(tmp_path: Path) -> None:
    """Opening a page (here: the entry a new dump pushes out of the feed is of a new month)
    links the page before it to it, once: RFC 5005 wants a next-archive link on every page
    but the newest."""
    dumps = tmp_path / "dumps"
    (dumps / "s").mkdir(parents=True)
    start = datetime(2024, 1, 10, tzinfo=UTC)
    for i in range(3):
        when = start + timedelta(days=31 * i)
        _write_dump(dumps / "s" / f"{i}.md", f"https://example.org/{i}", f"t{i}", when)
    out, state = tmp_path / "out", tmp_path / "state"
    config = Config(limit=1)
    build(dumps, out, config, state=state)
    assert [p.name for p, _ in walk_atom(out, "s")] == ["2024-02-1.xml", "2024-01-1.xml"]
    before = snapshot(out)
    _write_dump(
        dumps / "s" / "9.md", "https://example.org/9", "t9", datetime(2024, 6, 1, tzinfo=UTC)
    )
    build(dumps, out, config, state=state)
    changed = _changed(before, snapshot(out))
    assert changed == {
        "index.html",
        "s/index.html",
        "s/atom.xml",
        "s/rss.xml",
        "s/feed.json",
        "s/archive/2024-02-1.xml",  # gains its next-archive link
        "s/archive/2024-02-1.html",  # and its link to the newer page
        "s/archive/2024-03-1.xml",  # the entry the new dump pushed out of the feed
        "s/archive/2024-03-1.json",
        "s/archive/2024-03-1.html",
    }, changed
    assert [p.name for p, _ in walk_atom(out, "s")] == [
        "2024-03-1.xml",
        "2024-02-1.xml",
        "2024-01-1.xml",
    ]


def test_daemon_style_builds_of_named_paths_match_a_cold_build(tmp_path: Path) -> None:
    """The daemon builds with the paths file events named: same archive as a cold build,
    including a newer duplicate of an old id (the entry moves) and a future dump coming due."""
    dumps = tmp_path / "dumps"
    (dumps / "s").mkdir(parents=True)
    base = datetime(2024, 1, 5, tzinfo=UTC)
    for i in range(40):
        when = base + timedelta(days=9 * i)
        _write_dump(dumps / "s" / f"{i:02}.md", f"https://example.org/{i}", f"t{i}", when)
    out, state = tmp_path / "out", tmp_path / "state"
    now = datetime(2025, 6, 1, tzinfo=UTC)
    config = Config(limit=5)
    with open_builder(
        config, dumps=dumps, out=out, base_url=BASE_URL, state_dir=state, parallel=False
    ) as (builder, _):
        builder.build(now=now)
        dup = dumps / "s" / "dup.md"
        _write_dump(dup, "https://example.org/3", "t3 again", datetime(2024, 12, 1, tzinfo=UTC))
        future = dumps / "s" / "future.md"
        _write_dump(future, "https://example.org/f", "later", now + timedelta(days=2))
        (dumps / "s" / "07.md").unlink()
        builder.build(now=now, paths=["s/dup.md", "s/future.md", "s/07.md"])
        ids = [e[0] for e in collected_entries(out, "s")]
        assert "https://example.org/f" not in ids and "https://example.org/7" not in ids
        assert ids.count("https://example.org/3") == 1
        later = now + timedelta(days=3)
        builder.build(now=later, paths=[])
    fresh = tmp_path / "fresh"
    build(dumps, fresh, config, state=tmp_path / "fresh-state", now=later)
    assert {k: v[0] for k, v in snapshot(fresh).items()} == {
        k: v[0] for k, v in snapshot(out).items()
    }
    titles = {e[0]: e[1] for e in collected_entries(out, "s")}
    assert titles["https://example.org/3"] == "t3 again" and "https://example.org/f" in titles


def test_daemon_style_builds_follow_the_clock_both_ways_in_every_feed(tmp_path: Path) -> None:
    """A build of a few paths reuses what the other feeds showed (Builder._select) only while
    it must be the same: a dump of another source coming due, or the clock set back before
    one, changes that feed as a cold build at the same time would."""
    dumps = tmp_path / "dumps"
    base = datetime(2024, 1, 5, tzinfo=UTC)
    for source in ("a", "b"):
        (dumps / source).mkdir(parents=True)
        for i in range(8):
            when = base + timedelta(days=9 * i)
            url = f"https://example.org/{source}{i}"
            _write_dump(dumps / source / f"{i:02}.md", url, f"{source}{i}", when)
    now = datetime(2025, 6, 1, tzinfo=UTC)
    _write_dump(
        dumps / "b" / "soon.md", "https://example.org/soon", "soon", now + timedelta(hours=1)
    )
    out, state, config = tmp_path / "out", tmp_path / "state", Config(limit=3)
    steps = [now, now + timedelta(hours=2), now - timedelta(days=1), now + timedelta(days=1)]
    with open_builder(
        config, dumps=dumps, out=out, base_url=BASE_URL, state_dir=state, parallel=False
    ) as (builder, _):
        builder.build(now=now)
        for i, when in enumerate(steps):
            new = dumps / "a" / f"new{i}.md"
            _write_dump(new, f"https://example.org/new{i}", f"new{i}", when - timedelta(days=2))
            builder.build(now=when, paths=[f"a/new{i}.md"])  # a file event of source a only
            fresh = tmp_path / f"fresh{i}"
            build(dumps, fresh, config, state=tmp_path / f"fresh-state{i}", now=when)
            assert {k: v[0] for k, v in snapshot(fresh).items()} == {
                k: v[0] for k, v in snapshot(out).items()
            }, when
            shown = "https://example.org/soon" in (out / "b" / "atom.xml").read_text()
            assert shown == (when > now + timedelta(hours=1)), when


def test_archive_false_turns_archives_off_and_removes_them(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    (dumps / "a").mkdir(parents=True)
    (dumps / "b").mkdir()
    for source in ("a", "b"):
        for day in (1, 2):
            when = datetime(2024, 1, day, tzinfo=UTC)
            url = f"https://example.org/{source}{day}"
            _write_dump(dumps / source / f"{day}.md", url, source, when)
    out, state = tmp_path / "out", tmp_path / "state"
    build(dumps, out, Config(limit=1), state=state)
    assert (out / "a" / "archive" / "2024-01-1.xml").is_file()
    feeds = (FeedSpec("a", "a", ("a",), limit=1, archive=False),)
    build(dumps, out, Config(limit=1, feeds=feeds), state=state)
    assert not (out / "a" / "archive").exists()
    assert b"prev-archive" not in (out / "a" / "atom.xml").read_bytes()
    assert "next_url" not in json.loads((out / "a" / "feed.json").read_text())
    assert (out / "b" / "archive" / "2024-01-1.xml").is_file()
    build(dumps, out, Config(limit=1, archive=False), state=state)
    assert not list(out.glob("*/archive"))


def test_archive_key_is_validated() -> None:
    from feedbridge.config import parse_config
    from feedbridge.errors import ConfigError

    assert parse_config({"archive": False}).archive is False
    assert parse_config({"feeds": {"x": {"archive": False}}}).feeds[0].archive is False
    assert parse_config({"archive": False, "feeds": {"x": {}}}).feeds[0].archive is False
    with pytest.raises(ConfigError, match="archive must be true or false"):
        parse_config({"feeds": {"x": {"archive": "no"}}})


# -- paging, pure ---------------------------------------------------------------------------


def _entry(i: int, when: datetime, size: int = 100) -> Entry:
    return Entry(
        f"https://example.org/{i}",
        f"https://example.org/{i}",
        f"t{i}",
        when,
        "s",
        Content("<p>" + "x" * size + "</p>", "x"),
    )


def test_month_bounds_cover_the_month() -> None:
    assert month_bounds("2024-12") == (
        int(datetime(2024, 12, 1, tzinfo=UTC).timestamp()),
        int(datetime(2025, 1, 1, tzinfo=UTC).timestamp()),
    )
    assert month_of(datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)) == "2024-12"


def test_pages_of_a_month_are_bounded_and_newer_entries_never_move_older_ones() -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    entries = [_entry(i, start + timedelta(minutes=i), size=(i * 7919) % 60000) for i in range(900)]
    pages = cut_month("2024-03", entries)
    assert [p.key.name for p in pages][:2] == ["2024-03-1", "2024-03-2"]
    assert sum(len(p.entries) for p in pages) == 900
    for page in pages:
        assert len(page.entries) <= MAX_ENTRIES
        assert sum(entry_cost(e) for e in page.entries) <= PAGE_BUDGET
        assert list(page.entries) == sorted(page.entries, key=lambda e: e.published, reverse=True)
    more = cut_month("2024-03", [*entries, _entry(1000, start + timedelta(days=20))])
    assert more[: len(pages) - 1] == pages[:-1]


def test_an_entry_too_large_for_any_page_keeps_its_summary_not_its_body() -> None:
    huge = _entry(1, datetime(2024, 1, 1, tzinfo=UTC), size=MAX_BYTES)
    small, cost = fit(huge)
    assert small.content.html == "" and small.content.summary == "x"
    assert cost == entry_cost(small) <= PAGE_BUDGET
    normal = _entry(2, datetime(2024, 1, 1, tzinfo=UTC))
    assert fit(normal) == (normal, entry_cost(normal))
    assert shrink(huge) == small and shrink(normal) is normal
    worst = _entry(3, datetime(2024, 1, 1, tzinfo=UTC), size=0)
    worst = replace(worst, content=Content("\x01" * (PAGE_BUDGET // 6 - 1000), ""))
    assert shrink(worst) is worst and fit(worst)[0] == worst  # the bound is safe


def test_escaping_is_counted_in_a_page_budget() -> None:
    markup = replace(
        _entry(1, datetime(2024, 1, 1, tzinfo=UTC)), content=Content("<b>&</b>" * 1000, "")
    )
    assert entry_cost(markup) >= len("&lt;b&gt;&amp;&lt;/b&gt;") * 1000


def test_a_broken_body_found_by_the_archive_is_a_rejection_and_left_out(tmp_path: Path) -> None:
    """An archive reads every body: an old dump with a NUL deep in its body, which the feed
    (newest entries only) never reads, is rejected and missing from the archive."""
    dumps = tmp_path / "dumps"
    (dumps / "s").mkdir(parents=True)
    for i in range(4):
        when = datetime(2024, 1, 1 + i, tzinfo=UTC)
        _write_dump(dumps / "s" / f"{i}.md", f"https://example.org/{i}", f"t{i}", when)
    broken = dumps / "s" / "0.md"
    broken.write_bytes(broken.read_bytes() + b"<p>" + b"x" * 5000 + b"\0</p>\n")
    report = build(dumps, tmp_path / "out", Config(limit=2), state=tmp_path / "state")
    assert [Path(r.path).name for r in report.rejected] == ["0.md"]
    ids = sorted(e[0] for e in collected_entries(tmp_path / "out", "s"))
    assert ids == [f"https://example.org/{i}" for i in (1, 2, 3)]


def test_a_clock_set_back_takes_entries_out_again(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    (dumps / "s").mkdir(parents=True)
    for i in range(3):
        when = datetime(2024, 1 + i, 10, tzinfo=UTC)
        _write_dump(dumps / "s" / f"{i}.md", f"https://example.org/{i}", f"t{i}", when)
    out, state = tmp_path / "out", tmp_path / "state"
    config = Config(limit=1)
    build(dumps, out, config, state=state, now=datetime(2024, 6, 1, tzinfo=UTC))
    earlier = datetime(2024, 2, 20, tzinfo=UTC)
    build(dumps, out, config, state=state, now=earlier)
    assert [e[0] for e in collected_entries(out, "s")] == [
        "https://example.org/1",  # the feed
        "https://example.org/0",  # its archive
    ]
    fresh = tmp_path / "fresh"
    build(dumps, fresh, config, state=tmp_path / "fresh-state", now=earlier)
    assert {k: v[0] for k, v in snapshot(fresh).items()} == {
        k: v[0] for k, v in snapshot(out).items()
    }


@pytest.mark.parametrize(
    "text", ['&<>"\\\t\n\x7f', "<b>&amp;</b>", "中文“引号”", 'x" onload="y', "\U0001f600"]
)
def test_an_entrys_cost_bounds_what_it_adds_to_each_document(text: str) -> None:
    """A page's documents are cut by summed entry costs: each entry must add at most its
    cost to the Atom and the JSON page, whatever its fields hold."""
    from feedbridge.archive import HEAD_BYTES, Page, PageKey, Site, page_history, render_page
    from feedbridge.config import feed_urls

    spec = FeedSpec("s", "s", ("s",))
    key = PageKey("2024-01", 1)
    history = page_history(BASE_URL, "s", key, None, None)
    site = Site("t", None)

    def sizes(entries: tuple[Entry, ...]) -> dict[str, int]:
        docs = render_page(spec, feed_urls(spec, BASE_URL), Page(key, entries), history,
                           older=None, newer=None, site=site)  # fmt: skip
        return {suffix: len(data) for suffix, data in docs.items() if suffix != ".html"}

    when = datetime(2024, 1, 1, tzinfo=UTC)
    filled = Entry(
        "https://example.org/" + text.encode().hex(),
        "https://example.org/a?q=" + text.encode().hex(),
        text * 50,
        when,
        "s",
        Content(text * 2000, text * 30, "https://img.example.org/x.jpg", text * 5),
    )
    empty = sizes(())
    assert all(size <= HEAD_BYTES for size in empty.values())
    for suffix, size in sizes((filled,)).items():
        assert size - empty[suffix] <= entry_cost(filled), suffix


def test_archive_pages_announce_no_websub_hub(tmp_path: Path) -> None:
    """The feed names its hubs; its archive pages, which no one subscribes to, do not."""
    dumps = tmp_path / "dumps"
    (dumps / "s").mkdir(parents=True)
    for day in (1, 2, 3):
        when = datetime(2024, 1, day, tzinfo=UTC)
        _write_dump(dumps / "s" / f"{day}.md", f"https://example.org/{day}", f"t{day}", when)
    out = tmp_path / "out"
    hub = "https://hub.example.org/"
    build(dumps, out, Config(limit=1, hubs=(hub,)), state=tmp_path / "state")
    assert (
        hub in (out / "s" / "atom.xml").read_text() and hub in (out / "s" / "feed.json").read_text()
    )
    pages = sorted((out / "s" / "archive").glob("*.*"))
    assert {p.suffix for p in pages} == {".xml", ".json", ".html"}
    for page in pages:
        assert hub not in page.read_text(), page
