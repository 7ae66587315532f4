"""Web pages: the pure renderer (escaping, times, thumbnails, CSP, templates) and the pages a
build writes (the same entries as the feeds, byte-stable, written only when they change).

The oracle for "nothing can run" is BeautifulSoup's own ``html.parser``, independent of the
renderer: every element and attribute of a page must be on an allow-list, every URL http(s)
or relative, and hostile text must come back out as the same text.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import pytest
from bs4 import BeautifulSoup, Tag
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from feedbridge.config import feed_urls, parse_config
from feedbridge.errors import ConfigError
from feedbridge.model import Content, Entry, FeedSpec, History, plain
from feedbridge.pages import (
    Headline,
    Listed,
    iso_time,
    render_feed_page,
    render_index_page,
)

from .conftest import BASE_URL, EDGE, EXAMPLES, NOW
from .helpers import build, make_corpus, snapshot

#: Everything a bundled page may contain, and nothing that can run.
ELEMENTS = {
    "html", "head", "meta", "title", "link", "style", "body", "nav", "div", "a", "main",
    "header", "h1", "h2", "h3", "p", "time", "section", "dl", "dt", "dd", "code", "ol", "ul",
    "li", "img", "footer", "wbr",
}  # fmt: skip
ATTRIBUTES = {
    "lang", "charset", "http-equiv", "content", "name", "rel", "type", "title", "href", "class",
    "id", "aria-label", "aria-labelledby", "datetime", "src", "alt", "width", "height",
    "loading", "decoding", "referrerpolicy",
}  # fmt: skip
URL_ATTRIBUTES = ("href", "src")

#: Text that is markup, script or template syntax somewhere: it must stay text here.
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg/onload=alert(1)>",
    "</title><script>alert(document.domain)</script>",
    "</style><script>alert(1)</script>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">x</a>',
    "{{ 7*7 }} {% raw %}{{ config }}",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<!-- --><script>alert(1)</script>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "\u202e<b>RTL</b> 中文 <i>标题</i>",
]
#: Image URLs that must never reach a page.
BAD_IMAGES = [
    "javascript:alert(1)",
    "data:image/svg+xml,<svg onload=alert(1)>",
    "//evil.example/x.png",
    "vbscript:msgbox(1)",
    "/relative.png",
    "ftp://example.org/x.png",
]

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
WHEN_TEXT = "2024-01-02 03:04 UTC"


def entry(
    title: str = "Title",
    *,
    url: str = "https://example.org/a/1",
    when: datetime = WHEN,
    summary: str = "Summary",
    image: str | None = None,
    author: str | None = None,
) -> Entry:
    content = Content(html="<p>body</p>", summary=summary, image=image, author=author)
    return Entry(id=url, url=url, title=title, published=when, source="s", content=content)


def spec(**kw: str) -> FeedSpec:
    fields: dict[str, str] = {"name": "s", "title": "Feed"} | kw
    return FeedSpec(sources=("s",), **fields)  # type: ignore[arg-type]


def feed_page(entries: list[Entry], s: FeedSpec | None = None, **kw: object) -> str:
    s = s or spec()
    data = render_feed_page(s, entries, feed_urls(s, BASE_URL), site_title="Site", **kw)  # type: ignore[arg-type]
    return data.decode("utf-8")


def index_page(listed: list[Listed], title: str = "Site", **kw: object) -> str:
    return render_index_page(listed, title=title, **kw).decode("utf-8")  # type: ignore[arg-type]


def listed(s: FeedSpec, headlines: tuple[Headline, ...] = (), count: int = 0) -> Listed:
    return Listed(s, feed_urls(s, BASE_URL), count, headlines)


def soup(page: str) -> BeautifulSoup:
    return BeautifulSoup(page, "html.parser")


def assert_inert(page: str) -> None:
    """No element or attribute that can run, load or navigate anywhere but http(s) or OUT."""
    doc = soup(page)
    for tag in doc.find_all(True):
        assert isinstance(tag, Tag)
        assert tag.name in ELEMENTS, tag.name
        for attr, value in tag.attrs.items():
            assert attr in ATTRIBUTES, (tag.name, attr)
            assert not attr.startswith("on")
            if attr in URL_ATTRIBUTES:
                scheme = urlsplit(str(value).strip()).scheme.lower()
                icon = tag.name == "link" and tag.get("rel") == ["icon"]
                assert scheme in ({"http", "https", ""} | ({"data"} if icon else set())), value
        if tag.name == "meta" and tag.get("http-equiv"):
            assert tag["http-equiv"] == "Content-Security-Policy"
        if tag.name == "style":
            assert tag.parent is not None and tag.parent.name == "head"
    assert len(doc.find_all("style")) == 1
    assert not doc.find_all("script")


# -- escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_stays_text(text: str) -> None:
    s = spec(title=text, description=text, author=text)
    e = entry(text, summary=text, author=text)
    page = feed_page([e], s)
    assert_inert(page)
    doc = soup(page)
    item = doc.select_one("ol.entries > li")
    assert item is not None
    assert item.h3 is not None and item.h3.get_text() == text
    assert item.select_one("p.summary").get_text() == text  # type: ignore[union-attr]
    assert text in item.select_one("p.meta").get_text()  # type: ignore[union-attr]
    assert doc.h1 is not None and doc.h1.get_text() == text
    assert doc.title is not None and doc.title.get_text() == f"{text} · Site"
    index = index_page([listed(s, (Headline(text, e.url, WHEN),), 1)], title=text)
    assert_inert(index)
    card = soup(index).select_one("li.card")
    assert card is not None and card.h2 is not None and card.h2.get_text() == text
    assert card.select_one("ul.newest a").get_text() == text  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.sampled_from(["zh-Hans", "en", 'x" onload="alert(1)']))
def test_any_text_is_escaped(title: str, summary: str, language: str) -> None:
    """Property: whatever a dump's title and summary are, they come back out as text and add no
    element or attribute (a title is collapsed whitespace; characters HTML cannot carry are
    not expected to round-trip)."""
    title = " ".join(title.split())
    page = feed_page([entry(title, summary=summary)], spec(language=language))
    assert_inert(page)
    doc = soup(page)
    assert doc.html is not None and doc.html["lang"] == language
    a = doc.select_one("ol.entries h3 a")
    assert a is not None
    visible = title or "https://example.org/a/1"
    if "\r" not in visible and "\x00" not in visible:
        assert a.get_text() == visible


def test_hostile_dump_from_the_edge_corpus_leaves_nothing_that_runs(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    shutil.copytree(EDGE, dumps / "edge")
    out = tmp_path / "out"
    build(dumps, out)
    page = (out / "edge" / "index.html").read_text("utf-8")
    assert_inert(page)
    assert "Hostile HTML" in page
    assert "alert" not in page and "onerror" not in page and "<iframe" not in page
    assert_inert((out / "index.html").read_text("utf-8"))


@pytest.mark.parametrize("url", BAD_IMAGES)
def test_only_http_images_become_thumbnails(url: str) -> None:
    page = feed_page([entry(image=url)])
    assert_inert(page)
    assert soup(page).select("img") == []


def test_thumbnail_is_small_lazy_and_sends_no_referrer() -> None:
    page = feed_page([entry(image="https://img.example.org/a.jpg?x=1&y=2")])
    img = soup(page).select_one("li img")
    assert img is not None
    assert img["src"] == "https://img.example.org/a.jpg?x=1&y=2"
    assert img["loading"] == "lazy" and img["referrerpolicy"] == "no-referrer"
    assert img["alt"] == "" and img["width"] and img["height"]


# -- what a page says -------------------------------------------------------------------------


def test_time_is_rfc3339_and_readable_utc() -> None:
    from datetime import timedelta, timezone

    elsewhere = WHEN.astimezone(timezone(timedelta(hours=8)))
    page = feed_page([entry(when=elsewhere)])
    assert '<time datetime="2024-01-02T03:04:05Z">2024-01-02 03:04 UTC</time>' in page


def test_feed_page_has_discovery_subscribe_box_and_way_back() -> None:
    s = spec(link="https://www.example.org/news", description="What it is", language="zh-Hans")
    urls = feed_urls(s, BASE_URL)
    page = feed_page([entry(), entry("Older", url="https://example.org/a/0")], s)
    doc = soup(page)
    assert doc.html is not None and doc.html["lang"] == "zh-Hans"
    alternates = [(link["type"], link["href"]) for link in doc.select('head link[rel="alternate"]')]
    assert alternates == [
        ("application/atom+xml", urls.atom),
        ("application/rss+xml", urls.rss),
        ("application/feed+json", urls.json),
    ]
    box = doc.select_one("section.subscribe")
    assert box is not None
    assert [c.get_text() for c in box.select("code")] == [urls.atom, urls.rss, urls.json]
    assert [a["href"] for a in box.select("a")] == ["atom.xml", "rss.xml", "feed.json"]
    assert "feed reader" in box.get_text()
    assert doc.select_one('nav a[href="../"]') is not None
    assert doc.select_one('a[href="https://www.example.org/news"]') is not None
    assert "What it is" in page
    # last changed: the newest entry's time, not the clock
    assert doc.select_one("footer time")["datetime"] == "2024-01-02T03:04:05Z"  # type: ignore[index]


def test_entries_keep_their_order_and_fields() -> None:
    entries = [
        entry("B", url="https://example.org/b", when=WHEN, author="Ann", summary="sb"),
        entry("A", url="https://example.org/a", when=WHEN.replace(year=2023), summary=""),
    ]
    items = soup(feed_page(entries, spec(author="Desk"))).select("ol.entries > li")
    got = [
        (
            li.h3.get_text(),  # type: ignore[union-attr]
            li.select_one("h3 a")["href"],  # type: ignore[index]
            li.select_one("time")["datetime"],  # type: ignore[index]
            li.select_one("p.meta").get_text(),  # type: ignore[union-attr]
            [p.get_text() for p in li.select("p.summary")],
        )
        for li in items
    ]
    assert got == [
        ("B", "https://example.org/b", "2024-01-02T03:04:05Z", f"{WHEN_TEXT} · Ann", ["sb"]),
        ("A", "https://example.org/a", "2023-01-02T03:04:05Z", "2023-01-02 03:04 UTC · Desk", []),
    ]


def test_empty_feed_page_says_so_without_a_time() -> None:
    page = feed_page([])
    assert_inert(page)
    assert "No articles yet." in page and "<time" not in page


def test_csp_allows_only_images_and_the_one_stylesheet_by_its_hash() -> None:
    doc = soup(feed_page([entry()]))
    meta = doc.select_one('meta[http-equiv="Content-Security-Policy"]')
    assert meta is not None
    parts = [part.split() for part in str(meta["content"]).split(";")]
    policy = {words[0]: words[1:] for words in parts}
    assert policy["default-src"] == ["'none'"]
    assert policy["img-src"] == ["https:", "http:", "data:"]
    style = doc.style.string if doc.style else None
    assert style
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert policy["style-src"] == [f"'sha256-{digest}'"]
    assert "script-src" not in policy  # scripts fall back to default-src 'none'
    assert "prefers-color-scheme:dark" in style.replace(" ", "")
    assert "overflow-wrap:anywhere" in style.replace(" ", "")


def test_index_lists_every_feed_with_its_newest_titles_and_links() -> None:
    a = spec(name="a b", title="Alpha", description="First", language="ja")
    b = spec(name="b", title="Beta")
    heads = tuple(Headline(f"T{i}", f"https://example.org/{i}", WHEN) for i in range(3))
    page = index_page([listed(a, heads, 7), listed(b)], title="My feeds")
    assert_inert(page)
    doc = soup(page)
    cards = doc.select("li.card")
    assert [c.h2.get_text() for c in cards] == ["Alpha", "Beta"]  # type: ignore[union-attr]
    first = cards[0]
    assert first.select_one("h2 a")["href"] == "a%20b/"  # type: ignore[index]
    assert first.h2["lang"] == "ja"  # type: ignore[index]
    assert [x.get_text() for x in first.select("ul.newest a")] == ["T0", "T1", "T2"]
    assert "7 entries" in first.get_text() and "First" in first.get_text()
    assert first.select_one("time")["datetime"] == "2024-01-02T03:04:05Z"  # type: ignore[index]
    assert [x["href"] for x in first.select("p.formats a")] == [
        "a%20b/atom.xml",
        "a%20b/rss.xml",
        "a%20b/feed.json",
    ]
    assert "0 entries" in cards[1].get_text() and cards[1].select("time") == []
    assert "No articles yet." in cards[1].get_text()
    assert doc.select_one('a[href="feeds.opml"]') is not None
    assert len(doc.select('head link[rel="alternate"]')) == 6


def test_rendering_is_deterministic() -> None:
    entries = [entry(str(i), url=f"https://example.org/{i}") for i in range(5)]
    assert feed_page(entries) == feed_page(entries)


# -- templates --------------------------------------------------------------------------------


def test_user_templates_override_the_package_ones(tmp_path: Path) -> None:
    (tmp_path / "style.css").write_text("body{color:red}\n")
    (tmp_path / "feed.html").write_text(
        '{% extends "base.html" %}{% block body %}<p class="mine">{{ feed.title }}:'
        "{% for e in entries %}{{ e.title }}|{% endfor %}</p>{% endblock %}"
    )
    page = feed_page([entry("<b>x</b>")], templates=tmp_path)
    assert '<p class="mine">Feed:&lt;b&gt;x&lt;/b&gt;|</p>' in page
    assert "<style>body{color:red}\n</style>" in page
    digest = base64.b64encode(hashlib.sha256(b"body{color:red}\n").digest()).decode()
    assert f"'sha256-{digest}'" in page
    assert_inert(page)
    # templates not overridden come from the package
    assert 'class="card"' in index_page([listed(spec(), (), 0)], templates=tmp_path)


def test_missing_or_broken_templates_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"templates folder \S* does not exist"):
        feed_page([entry()], templates=tmp_path / "nope")
    (tmp_path / "feed.html").write_text("line one\n{% for x in %}\n")
    with pytest.raises(ConfigError, match=r"template \S*/feed\.html:2: Expected an expression"):
        feed_page([entry()], templates=tmp_path)


def test_templates_key_in_config_is_a_path_next_to_the_file(tmp_path: Path) -> None:
    config = parse_config({"templates": "tpl"}, src=tmp_path / "fb.toml")
    assert config.templates == (tmp_path / "tpl").resolve()
    with pytest.raises(ConfigError, match="templates must be a str"):
        parse_config({"templates": 3}, src=tmp_path / "fb.toml")


def test_broken_template_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from feedbridge.cli import cli

    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "index.html").write_text("{% if %}")
    shutil.copytree(EXAMPLES, tmp_path / "dumps")
    config = tmp_path / "fb.toml"
    config.write_text(f'dumps = "dumps"\nout = "out"\nbase_url = "{BASE_URL}"\ntemplates = "tpl"\n')
    result = CliRunner().invoke(cli, ["build", "--config", str(config)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"template {tmp_path}/tpl/index.html:1: " in lines[0], lines
    assert not list((tmp_path / "out").rglob("*.*"))  # found before anything was written


# -- pages in a build -------------------------------------------------------------------------


ATOM = {"a": "http://www.w3.org/2005/Atom"}


def atom_entries(path: Path) -> list[tuple[str, str, str]]:
    """(title, article link, published) of every entry of an Atom feed, in its order."""
    root = etree.parse(str(path)).getroot()
    return [
        (
            atom_text(e.find("a:title", ATOM)),
            next(
                str(link.get("href"))
                for link in e.findall("a:link", ATOM)
                if link.get("rel", "alternate") == "alternate"
            ),
            e.findtext("a:published", namespaces=ATOM) or "",
        )
        for e in root.findall("a:entry", ATOM)
    ]


def atom_text(el: etree._Element | None) -> str:
    """The text an Atom text construct stands for (``type="html"``: HTML-escaped text)."""
    if el is None:
        return ""
    text = el.text or ""
    return html.unescape(text) if el.get("type") == "html" else text


def page_entries(path: Path) -> list[tuple[str, str, str]]:
    doc = soup(path.read_text("utf-8"))
    return [
        (
            li.select_one("h3 a").get_text(),  # type: ignore[union-attr]
            str(li.select_one("h3 a")["href"]),  # type: ignore[index]
            str(li.select_one("time")["datetime"]),  # type: ignore[index]
        )
        for li in doc.select("ol.entries > li")
    ]


CORPUS_CONFIG = {
    "title": "Shared corpus",
    "limit": 30,
    "feeds": {
        "everything": {"title": "Everything", "sources": ["*"], "limit": 100},
        "voa": {"title": "美国之音", "language": "zh-Hans", "link": "https://www.voachinese.com/"},
        "empty": {"title": "Nothing yet", "sources": ["no-such-source"]},
    },
}


@pytest.fixture(scope="module")
def corpus_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("pages")
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    dumps = make_corpus(base / "dumps")
    out = base / "out"
    build(dumps, out, parse_config(CORPUS_CONFIG), state=base / "state")
    return out


def feed_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.mark.usefixtures("corpus_present")
def test_every_page_lists_exactly_its_feeds_entries(corpus_out: Path) -> None:
    folders = feed_dirs(corpus_out)
    assert len(folders) >= 12
    for folder in folders:
        want = atom_entries(folder / "atom.xml")
        assert page_entries(folder / "index.html") == want, folder.name
        assert_inert((folder / "index.html").read_text("utf-8"))
    assert len(atom_entries(corpus_out / "everything" / "atom.xml")) > 30


@pytest.mark.usefixtures("corpus_present")
def test_index_shows_each_feeds_count_time_and_newest_titles(corpus_out: Path) -> None:
    doc = soup((corpus_out / "index.html").read_text("utf-8"))
    cards = {
        str(c.select_one("h2 a")["href"]).rstrip("/"): c  # type: ignore[index]
        for c in doc.select("li.card")
    }
    assert sorted(cards) == [p.name for p in feed_dirs(corpus_out)]
    for name, card in cards.items():
        atom = corpus_out / name / "atom.xml"
        entries = atom_entries(atom)
        assert f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}" in card.get_text()
        assert [(a.get_text(), a["href"]) for a in card.select("ul.newest a")] == [
            (title, link) for title, link, _ in entries[:3]
        ]
        updated = etree.parse(str(atom)).getroot().findtext("a:updated", namespaces=ATOM)
        times = [t["datetime"] for t in card.select("time")]
        assert times == ([updated] if entries else []), name
    assert_inert((corpus_out / "index.html").read_text("utf-8"))


@pytest.mark.usefixtures("corpus_present")
def test_every_relative_link_resolves_inside_out(corpus_out: Path) -> None:
    """What a static server of OUT answers: a folder URL is its index.html."""
    pages = [corpus_out / "index.html", *(p / "index.html" for p in feed_dirs(corpus_out))]
    checked = 0
    for page in pages:
        folder = page.parent.relative_to(corpus_out)
        here = "http://out/" + ("" if folder == Path() else quote(str(folder)) + "/")
        for tag in soup(page.read_text("utf-8")).find_all(["a", "link"]):
            href = str(tag.get("href"))
            target = urljoin(here, href)
            if not target.startswith("http://out/"):
                continue
            rel = unquote(urlsplit(target).path).lstrip("/")
            path = corpus_out / rel
            assert (path / "index.html" if target.endswith("/") else path).is_file(), href
            checked += 1
    assert checked > 5 * len(pages)


@pytest.mark.usefixtures("corpus_present")
def test_pages_are_written_only_when_their_bytes_change(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    out, state = tmp_path / "out", tmp_path / "state"
    config = parse_config(CORPUS_CONFIG)
    build(dumps, out, config, state=state)
    before = snapshot(out)
    report = build(dumps, out, config, state=state)
    assert report.written == () and snapshot(out) == before

    # rfi's oldest dump (in no other feed) changes rfi's feeds and page, not the index
    _, last_link, _ = atom_entries(out / "rfi" / "atom.xml")[-1]
    oldest = next(p for p in (dumps / "rfi").iterdir() if last_link in p.read_text("utf-8"))
    text = oldest.read_text("utf-8")
    oldest.write_text(text.replace("](", " (edited)](", 1), "utf-8")
    report = build(dumps, out, config, state=state)
    changed = sorted(str(Path(p).relative_to(out)) for p in report.written)
    archived = [c for c in changed if "/archive/" in c]  # and its month in the archives
    assert len({c.rpartition("/")[2][:7] for c in archived}) == 1
    # rfi shows every dump it has (no archive pages); "everything" has the dump on one
    assert {c.partition("/")[0] for c in archived} == {"everything"}
    assert [c for c in changed if c not in archived] == [
        "rfi/atom.xml",
        "rfi/feed.json",
        "rfi/index.html",
        "rfi/rss.xml",
    ]

    # a deleted page is written again; nothing else is
    for page in ("voa/index.html", "index.html"):
        (out / page).unlink()
        report = build(dumps, out, config, state=state)
        assert [str(Path(p).relative_to(out)) for p in report.written] == [page]


def test_a_new_title_or_template_rewrites_the_pages_not_the_feeds(tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    build(EXAMPLES, out, parse_config({"title": "One"}), state=state)
    before = snapshot(out)
    report = build(EXAMPLES, out, parse_config({"title": "Two"}), state=state)
    changed = sorted(str(Path(p).relative_to(out)) for p in report.written)
    pages = ["index.html", "nyt/index.html", "rfi/index.html", "voa/index.html"]
    pages = sorted([*pages, *(str(p.relative_to(out)) for p in out.glob("*/archive/*.html"))])
    assert changed == ["feeds.opml", *pages]  # the OPML's title is the site title too
    after = snapshot(out)
    twins = [f"{k}.gz" for k in changed]  # each written file's gzip twin is rewritten with it
    assert all(after[k] == before[k] for k in before if k not in changed and k not in twins)
    assert all(after[k] != before[k] for k in twins)

    templates = tmp_path / "tpl"
    templates.mkdir()
    config = parse_config({"title": "Two", "templates": str(templates)})
    assert build(EXAMPLES, out, config, state=state).written == ()  # an empty folder: same pages
    (templates / "style.css").write_text("body{margin:0}\n")
    report = build(EXAMPLES, out, config, state=state)
    assert sorted(str(Path(p).relative_to(out)) for p in report.written) == pages
    assert "body{margin:0}" in (out / "voa" / "index.html").read_text("utf-8")


def test_removed_feed_takes_its_page(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    shutil.copytree(EXAMPLES, dumps)
    out = tmp_path / "out"
    build(dumps, out)
    assert (out / "rfi" / "index.html").is_file()
    shutil.rmtree(dumps / "rfi")
    build(dumps, out)
    assert not (out / "rfi").exists()
    assert 'href="rfi/"' not in (out / "index.html").read_text("utf-8")


def test_page_times_come_from_entries_not_the_clock(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    build(EXAMPLES, a, now=NOW)
    build(EXAMPLES, b, now=NOW.replace(year=2027))
    for name in ("index.html", "voa/index.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


@pytest.mark.slow
def test_daemon_updates_a_feeds_page_with_its_feed(tmp_path: Path) -> None:
    import time

    from .daemon_helpers import RunningDaemon, read, wait_for

    dumps = tmp_path / "dumps"
    shutil.copytree(EXAMPLES, dumps)
    daemon = RunningDaemon(dumps, tmp_path / "out", tmp_path / "state")
    try:
        page, index = daemon.out / "voa" / "index.html", daemon.out / "index.html"
        millis = int(time.time() * 1000)
        url = "https://www.voachinese.com/a/page-test.html"
        (dumps / "voa" / "new.md").write_text(f"<!--{millis}-->\n[<b>Fresh</b>]({url})\n---\n\nx\n")
        wait_for(lambda: url in read(page), what="the new entry on the feed's page")
        wait_for(lambda: url in read(index), what="the new entry on the index")
        wait_for(lambda: page_entries(page) == atom_entries(daemon.out / "voa" / "atom.xml"))
        assert page_entries(page)[0][:2] == ("<b>Fresh</b>", url)
        assert_inert(read(page))
    finally:
        assert daemon.stop() == 0


@given(
    title=st.text(max_size=20),
    sources=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=3),
    hubs=st.lists(st.text(max_size=8), max_size=2),
    limit=st.integers(1, 100),
    archived=st.integers(0, 10**6),
    prev=st.none() | st.text(max_size=12),
    when=st.datetimes(timezones=st.just(UTC)),
)
def test_fingerprints_read_values_as_asdict_does(
    title: str,
    sources: list[str],
    hubs: list[str],
    limit: int,
    archived: int,
    prev: str | None,
    when: datetime,
) -> None:
    """``plain`` stands in for ``dataclasses.asdict`` in every fingerprint: the same JSON, so
    fingerprints (and what they let a build skip) are what they were."""
    spec = FeedSpec("f", title, tuple(sources), limit=limit, hubs=tuple(hubs))
    urls = feed_urls(spec, BASE_URL)
    history = History(prev_atom=prev, prev_json=prev, archived=archived)
    listed = Listed(spec, urls, limit, (Headline(title, "https://x.org/a", when),), history)
    for value in (spec, urls, history, listed, [listed, listed]):
        expected = asdict(value) if not isinstance(value, list) else [asdict(v) for v in value]
        assert json.dumps(plain(value), default=iso_time) == json.dumps(expected, default=iso_time)
