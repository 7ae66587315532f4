"""Integration: build the whole shared corpus and hold every feed against the spec."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from feedbridge.config import Config, parse_config
from feedbridge.errors import PublishError

from .conftest import BASE_URL, NOW, SPEC
from .helpers import build, expected_entries, make_corpus, snapshot

SOURCES = ["BBC", "bbc", "cdt", "dw", "edge", "ft", "nyt", "reuters", "rfa", "rfi", "voa"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("corpus")
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    dumps = make_corpus(base / "dumps")
    out = base / "out"
    report = build(dumps, out)
    assert report.written
    return dumps, out


def test_one_feed_per_source(built: tuple[Path, Path]) -> None:
    _, out = built
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == SOURCES
    for source in SOURCES:
        # every source shows all its dumps (at most 23, limit 50): no archive pages
        assert sorted(p.name for p in (out / source).iterdir()) == [
            "atom.xml",
            "atom.xml.gz",
            "feed.json",
            "feed.json.gz",
            "index.html",
            "index.html.gz",
            "rss.xml",
            "rss.xml.gz",
        ]
    assert (out / "index.html").is_file() and (out / "feeds.opml").is_file()


def _jing(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("jing") is None:
        pytest.fail("jing is not installed (Debian package 'jing'; .ci/run installs it)")
    return subprocess.run(["jing", *args], capture_output=True, text=True, check=False)


def _jing_errors(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(line for line in lines if "Unable to locate" not in line)


@pytest.mark.parametrize("source", SOURCES)
def test_atom_passes_rfc4287_schema_and_rules(built: tuple[Path, Path], source: str) -> None:
    atom = built[1] / source / "atom.xml"
    schema = _jing("-c", str(SPEC / "atom.rnc"), str(atom))
    assert schema.returncode == 0, _jing_errors(schema)
    rules = _jing(str(SPEC / "atom-rules.sch"), str(atom))
    assert rules.returncode == 0, _jing_errors(rules)


def test_jing_catches_a_broken_feed(tmp_path: Path) -> None:
    """The validation above can fail: a feed without id and updated does."""
    bad = tmp_path / "bad.xml"
    bad.write_text('<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>')
    assert _jing("-c", str(SPEC / "atom.rnc"), str(bad)).returncode != 0


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("fmt", ["atom.xml", "rss.xml"])
def test_feedparser_reads_back_every_entry(built: tuple[Path, Path], source: str, fmt: str) -> None:
    dumps, out = built
    parsed = feedparser.parse((out / source / fmt).read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    expected = expected_entries(dumps / source)
    assert len(parsed.entries) == len(expected)
    for got, want in zip(parsed.entries, expected, strict=True):
        assert got.id == want.id
        assert got.title == want.title
        assert got.link == want.url
        published = datetime(*got.published_parsed[:6], tzinfo=UTC)
        assert published == want.published
        assert got.tags[0].term == source
    feed_time = parsed.feed.get("updated_parsed")
    if expected and feed_time:
        assert datetime(*feed_time[:6], tzinfo=UTC) == expected[0].published


@pytest.mark.parametrize("source", SOURCES)
def test_json_feed_has_the_same_items(built: tuple[Path, Path], source: str) -> None:
    dumps, out = built
    feed = json.loads((out / source / "feed.json").read_text("utf-8"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == f"{BASE_URL}{source}/feed.json"
    expected = expected_entries(dumps / source)
    assert [i["id"] for i in feed["items"]] == [e.id for e in expected]
    for item, want in zip(feed["items"], expected, strict=True):
        assert item["url"] == want.url and item["title"] == want.title
        assert item["date_published"] == want.published.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert item["tags"] == [source]
        assert "content_html" in item


def test_times_are_utc_with_z_and_plus0000(built: tuple[Path, Path]) -> None:
    out = built[1]
    atom = (out / "voa" / "atom.xml").read_text("utf-8")
    rss = (out / "voa" / "rss.xml").read_text("utf-8")
    assert "<published>2025-02-15T08:39:03Z</published>" in atom
    assert "<updated>2025-02-15T08:39:03Z</updated>" in atom
    assert "+00:00" not in atom
    assert "<pubDate>Sat, 15 Feb 2025 08:39:03 +0000</pubDate>" in rss
    assert "<lastBuildDate>Sat, 15 Feb 2025 08:39:03 +0000</lastBuildDate>" in rss


def test_edge_feed_follows_the_corpus_table(built: tuple[Path, Path]) -> None:
    out = built[1]
    parsed = feedparser.parse((out / "edge" / "atom.xml").read_bytes())
    by_id = {e.id: e for e in parsed.entries}
    dup = by_id["https://example.org/news/dup"]
    assert dup.title == "Same article, newer dump"
    assert sum(1 for e in parsed.entries if e.id == "https://example.org/news/dup") == 1
    assert "https://example.org/news/future" not in by_id
    assert "https://example.org/hidden" not in by_id and "https://example.org/partial" not in by_id
    assert (
        by_id["https://cn.nytimes.com/world/20250214/sample/"].author == "储百亮, CATIE EDMONDSON"
    )
    standard = by_id["https://www.voachinese.com/a/sample-20220110/6390398.html"]
    assert "https://www.voachinese.com/a/42.html" in standard.content[0].value
    hostile = by_id["https://example.org/news/hostile"].content[0].value
    for bad in ("<script", "<style", "<iframe", "<form", "onclick", "onerror", "javascript:"):
        assert bad not in hostile.lower()
    assert by_id["https://example.org/news/ctrl"].title == "Controlcharacters in title"


def test_report_names_rejections_and_future(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    report = build(dumps, tmp_path / "out")
    rejected = {Path(r.path).name: (r.line, r.reason) for r in report.rejected}
    assert set(rejected) == {
        "bad-no-title.md",
        "bad-no-url.md",
        "bad-not-http.md",
        "bad-nul-bytes.md",
        "bad-not-utf8.md",
        "empty-file.md",
    }
    assert len(report.rejected) == len(rejected)  # each once
    assert rejected["bad-nul-bytes.md"][0] == 5
    assert [Path(d.path).name for d in report.future] == ["future.md"]
    assert {Path(d.path).name for d in report.fallbacks} == {
        "epoch-nan-body-date.md",
        "epoch-nan-iso-body-date.md",
        "no-epoch-date-line.md",
        "no-date-at-all.md",
    }


def test_second_build_changes_no_byte_and_no_mtime(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    out = tmp_path / "out"
    build(dumps, out)
    before = snapshot(out)
    time.sleep(0.01)
    report = build(dumps, out)
    assert report.written == ()
    assert snapshot(out) == before


def test_cold_build_is_byte_identical(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    build(dumps, tmp_path / "a", state=tmp_path / "state-a")
    build(dumps, tmp_path / "b", state=tmp_path / "state-b")
    a = {k: v[0] for k, v in snapshot(tmp_path / "a").items()}
    b = {k: v[0] for k, v in snapshot(tmp_path / "b").items()}
    assert a.keys() == b.keys()
    # only the self/feed URLs may differ between outputs: they are the same base URL here
    assert a == b


#: The archive documents of the month of voa/1009500.md.


def test_edited_dump_changes_exactly_its_feeds(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    out = tmp_path / "out"
    config = parse_config({"feeds": {"combined": {"sources": ["voa", "nyt"], "limit": 100}}})
    build(dumps, out, config)
    before = snapshot(out)
    target = dumps / "voa" / "1009500.md"
    text = target.read_text("utf-8").replace("就职日有哪些看点", "就职日看点（更新）")
    target.write_text(text, "utf-8")
    report = build(dumps, out, config)
    after = snapshot(out)
    changed = sorted(k for k in after if after[k] != before.get(k) and not k.endswith(".gz"))
    # the feeds and pages of both feeds (which show every dump: no archive pages), and the
    # index, which shows voa's three newest titles
    files = ("atom.xml", "feed.json", "index.html", "rss.xml")
    assert changed == sorted(
        ["index.html"] + [f"{feed}/{f}" for feed in ("voa", "combined") for f in files]
    )
    twins = sorted(k for k in after if after[k] != before.get(k) and k.endswith(".gz"))
    assert twins == [f"{c}.gz" for c in changed]
    assert sorted(report.written) == sorted(str(out / c) for c in changed)
    for page in ("voa/atom.xml", "voa/index.html", "index.html"):
        assert "就职日看点（更新）" in (out / page).read_text("utf-8")


def test_deleted_dump_leaves_its_feed(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    out = tmp_path / "out"
    build(dumps, out)
    (dumps / "nyt" / "1041950.md").unlink()
    build(dumps, out)
    assert "taiwan-tariffs-trump" not in (out / "nyt" / "atom.xml").read_text("utf-8")


def test_removed_source_removes_its_feed(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    out = tmp_path / "out"
    config = Config(limit=3)  # feeds with archive pages
    build(dumps, out, config)
    assert (out / "ft" / "archive").is_dir()
    shutil.rmtree(dumps / "ft")
    report = build(dumps, out, config)
    assert not (out / "ft").exists()
    assert sorted(Path(p).name for p in report.removed if "/archive/" not in p) == [
        "atom.xml",
        "feed.json",
        "index.html",
        "rss.xml",
    ]
    assert {Path(p).parent.name for p in report.removed} == {"ft", "archive"}
    assert "/ft/" not in (out / "index.html").read_text("utf-8")


def test_future_dump_appears_when_its_time_comes(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    (dumps / "s").mkdir(parents=True)
    later = NOW + timedelta(hours=1)
    (dumps / "s" / "a.md").write_text(
        f"<!--{int(later.timestamp() * 1000)}-->\n[Later](https://x.org/later)\n------\n\n<p>x</p>\n"
    )
    out = tmp_path / "out"
    report = build(dumps, out, now=NOW)
    assert [Path(d.path).name for d in report.future] == ["a.md"]
    assert "x.org/later" not in (out / "s" / "atom.xml").read_text()
    report = build(dumps, out, now=later)
    assert report.future == ()
    assert "x.org/later" in (out / "s" / "atom.xml").read_text()


def test_limit_keeps_the_newest(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    out = tmp_path / "out"
    build(dumps, out, parse_config({"limit": 3}))
    parsed = feedparser.parse((out / "dw" / "atom.xml").read_bytes())
    assert [e.id for e in parsed.entries] == [e.id for e in expected_entries(dumps / "dw", limit=3)]


def test_declared_feed_settings_reach_every_format(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    out = tmp_path / "out"
    config = parse_config(
        {
            "auto_feeds": False,
            "feeds": {
                "news": {
                    "title": "新闻",
                    "sources": ["voa", "r*"],
                    "link": "https://site.example/",
                    "description": "Desc",
                    "language": "zh-Hans",
                    "author": "Ed",
                }
            },
        }
    )
    build(dumps, out, config)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["news"]
    atom = feedparser.parse((out / "news" / "atom.xml").read_bytes())
    rss = feedparser.parse((out / "news" / "rss.xml").read_bytes())
    assert atom.feed.title == rss.feed.title == "新闻"
    assert rss.feed.link == "https://site.example/"
    assert rss.feed.language == "zh-Hans"
    assert {e.tags[0].term for e in atom.entries} == {"voa", "reuters", "rfa", "rfi"}
    assert len(atom.entries) == 50
    assert all(e.author == "Ed" for e in atom.entries)
    js = json.loads((out / "news" / "feed.json").read_text())
    assert js["language"] == "zh-Hans" and js["home_page_url"] == "https://site.example/"


@pytest.mark.parametrize("parallel", [False, True])
def test_failed_write_leaves_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool
) -> None:
    """Also when the feed is written by a scan worker: its error reaches the build as is."""
    if parallel:
        from feedbridge import scan as scan_module

        monkeypatch.setattr(scan_module, "PARALLEL_MIN_FILES", 1)
    dumps = make_corpus(tmp_path / "dumps")
    out = tmp_path / "out"
    build(dumps, out)
    before = snapshot(out)
    (dumps / "voa" / "1008880.md").unlink()

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", broken)
        with pytest.raises(PublishError, match="No space left"):
            build(dumps, out)
    assert snapshot(out) == before
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    build(dumps, out)  # and the next build recovers
    assert "cook-islands" not in (out / "voa" / "atom.xml").read_text("utf-8")


def test_index_html_and_opml_list_every_feed(built: tuple[Path, Path]) -> None:
    _, out = built
    index = (out / "index.html").read_text("utf-8")
    opml = (out / "feeds.opml").read_text("utf-8")
    for source in SOURCES:
        for f in ("atom.xml", "rss.xml", "feed.json"):
            assert f'href="{BASE_URL}{source}/{f}"' in index
        assert f'xmlUrl="{BASE_URL}{source}/atom.xml"' in opml
    assert index.count('<link rel="alternate"') == 3 * len(SOURCES)


#: The W3C Feed Validator's test for a full URI (rfc2396_full), which it applies to RSS links
#: and guids, Atom ids and media:thumbnail URLs.
W3C_FULL_URI = re.compile(
    r"[a-zA-Z][0-9a-zA-Z+\-.]*:(//)?(\[[0-9A-Fa-f:]+\])?[0-9a-zA-Z;/?:@&=+$.\-_!~*'()%,#]+$"
)
NS = {"a": "http://www.w3.org/2005/Atom", "media": "http://search.yahoo.com/mrss/"}


@pytest.mark.parametrize("source", SOURCES)
def test_every_url_element_is_a_w3c_full_uri(built: tuple[Path, Path], source: str) -> None:
    out = built[1]
    atom = etree.parse(str(out / source / "atom.xml"))
    rss = etree.parse(str(out / source / "rss.xml"))
    urls = [
        *atom.xpath("//a:id/text()", namespaces=NS),
        *atom.xpath("//a:link/@href", namespaces=NS),
        *atom.xpath("//media:thumbnail/@url", namespaces=NS),
        *rss.xpath("//link/text() | //guid/text() | //a:link/@href", namespaces=NS),
        *rss.xpath("//media:thumbnail/@url", namespaces=NS),
    ]
    assert urls
    for url in urls:
        assert W3C_FULL_URI.match(url), url


@pytest.mark.parametrize("source", SOURCES)
def test_rss_dates_have_the_right_weekday(built: tuple[Path, Path], source: str) -> None:
    rss = etree.parse(str(built[1] / source / "rss.xml"))
    for text in rss.xpath("//pubDate/text() | //lastBuildDate/text()"):
        when = parsedate_to_datetime(text)
        assert text == when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def test_a_source_without_valid_dumps_still_gets_a_valid_feed(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    (dumps / "empty").mkdir(parents=True)
    (dumps / "empty" / "bad.md").write_text("not a dump\n")
    out = tmp_path / "out"
    build(dumps, out)
    atom = out / "empty" / "atom.xml"
    assert _jing("-c", str(SPEC / "atom.rnc"), str(atom)).returncode == 0
    assert _jing(str(SPEC / "atom-rules.sch"), str(atom)).returncode == 0
    for fmt in ("atom.xml", "rss.xml"):
        parsed = feedparser.parse((out / "empty" / fmt).read_bytes())
        assert not parsed.bozo and parsed.entries == []
    assert json.loads((out / "empty" / "feed.json").read_text())["items"] == []


@given(st.text())
def test_opml_attributes_are_quoted_as_saxutils_does(value: str) -> None:
    from xml.sax.saxutils import quoteattr as reference

    from feedbridge.listing import quoteattr

    assert quoteattr(value) == reference(value)
