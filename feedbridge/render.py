"""Pure rendering: (FeedSpec, entries) -> Atom, RSS 2.0 and JSON Feed 1.1 bytes.

The only module that touches feedgen (untyped); it stays behind typed functions here.
Everything is a function of the input: the feed's ``updated`` is its newest entry's time, never
the clock, so the same entries give the same bytes.

Every field is written for the way readers read it (the table is in README, "Safe for every
reader"): text that readers may render as HTML -- RSS ``title`` and ``description``, Atom text
constructs, which are declared ``type="html"`` when they hold a ``<`` -- is HTML-escaped
before XML escapes it again; HTML fields hold only cleaned HTML; names (authors, categories)
are text everywhere and lose the angle brackets that would make them markup for a reader that
renders them as HTML; JSON Feed's ``title`` and ``summary`` are plain text by its spec.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from feedgen.feed import FeedGenerator

from feedbridge import __version__
from feedbridge.listing import GENERATOR
from feedbridge.model import Entry, FeedSpec, FeedUrls, History
from feedbridge.splice import ATOM_ENTRY, RSS_ITEM, Fragments

#: ``updated`` of a feed without entries: a fixed instant keeps empty feeds byte-stable.
EMPTY_FEED_TIME = datetime(1970, 1, 1, tzinfo=UTC)
JSONFEED_VERSION = "https://jsonfeed.org/version/1.1"
ATOM_NS = "http://www.w3.org/2005/Atom"
#: Atom text constructs that feedbridge fills: the escaping is decided in ``_AtomHtmlText``.
_ATOM_TEXTS = (
    f"{{{ATOM_NS}}}title",
    f"{{{ATOM_NS}}}subtitle",
    f"{{{ATOM_NS}}}summary",
    "title",
    "subtitle",
    "summary",
)
#: RFC 5005 (Feed Paging and Archiving) namespace of ``fh:archive``.
FH_NS = "http://purl.org/syndication/history/1.0"


class _Zulu(datetime):
    """A UTC datetime that feedgen prints as RFC 3339 with ``Z`` (it calls isoformat())."""

    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return self.strftime("%Y-%m-%dT%H:%M:%SZ")


def _zulu(when: datetime) -> _Zulu:
    when = when.astimezone(UTC)
    return _Zulu(when.year, when.month, when.day, when.hour, when.minute, when.second, tzinfo=UTC)


def rfc3339(when: datetime) -> str:
    return _zulu(when).isoformat()


def feed_updated(entries: Sequence[Entry]) -> datetime:
    return max((e.published for e in entries), default=EMPTY_FEED_TIME)


def feed_author(spec: FeedSpec) -> str:
    return spec.author or spec.title


def html_text(text: str) -> str:
    """Plain text as the HTML that displays it, for a field readers render as HTML."""
    return html.escape(text, quote=False)


def name_text(name: str) -> str:
    """A name (author, category) for fields that some readers show as text and others render
    as HTML: without ``<`` and ``>`` it is the same text either way, and no real name needs them."""
    return name.replace("<", "").replace(">", "")


class _AtomHtmlText:
    """feedgen extension (duck-typed: feedgen is untyped) for Atom's text constructs (the
    feed's and each entry's ``title``, ``subtitle``, ``summary``), which arrive HTML-escaped.
    A text with a ``<`` is declared ``type="html"`` and keeps its escaping, so readers that
    honour the type and readers that render HTML regardless show the same text and run
    nothing; any other text is plain ``type="text"`` (the default), which every reader shows
    alike: without ``<`` no reading makes markup of it."""

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_atom(self, element: Any) -> Any:
        for child in element.iterchildren(*_ATOM_TEXTS):
            text = child.text or ""
            if "&lt;" in text:
                child.set("type", "html")
            else:
                child.text = html.unescape(text)  # exactly what html_text escaped
                child.attrib.pop("type", None)
        return element

    def extend_rss(self, element: Any) -> Any:
        return element


class _HistoryExtension:
    """feedgen extension writing RFC 5005 links (and ``fh:archive`` on an archive page) into
    ``atom:feed`` or RSS's ``channel``, before the entries."""

    history = History()

    def extend_ns(self) -> dict[str, str]:
        return {"fh": FH_NS} if self.history.is_archive else {}

    def _links(self, current: str | None) -> list[tuple[str, str]]:
        h = self.history
        links = [("current", current)] if h.is_archive else []
        links += [("prev-archive", h.prev_atom), ("next-archive", h.next_atom)]
        return [(rel, href) for rel, href in links if href]

    def extend_atom(self, feed: Any) -> Any:
        from lxml import etree

        at = _first_entry(feed)
        if self.history.is_archive:
            feed.insert(at, etree.Element(f"{{{FH_NS}}}archive"))
            at += 1
        for rel, href in self._links(self.current):
            link = etree.Element("link", href=href, rel=rel, type="application/atom+xml")
            feed.insert(at, link)
            at += 1
        return feed

    def extend_rss(self, feed: Any) -> Any:
        from lxml import etree

        channel = feed.find("channel")
        at = _first_entry(channel)
        for rel, href in self._links(self.current):
            link = etree.Element(f"{{{ATOM_NS}}}link", href=href, rel=rel)
            link.set("type", "application/atom+xml")
            channel.insert(at, link)
            at += 1
        return feed

    current: str | None = None


def _first_entry(parent: Any) -> int:
    for i, child in enumerate(parent):
        if child.tag in ("entry", "item", f"{{{ATOM_NS}}}entry"):
            return i
    return len(parent)


def _generator(
    spec: FeedSpec,
    entries: Sequence[Entry],
    urls: FeedUrls,
    self_url: str,
    self_type: str,
    history: History | None = None,
    updated: datetime | None = None,
) -> Any:
    """``updated``: the feed's time, when ``entries`` are only some of its entries."""
    fg = FeedGenerator()
    fg.load_extension("media", atom=True, rss=True)
    fg.load_extension("dc", atom=False, rss=True)
    fg.register_extension("feedbridge_html", _AtomHtmlText, _AtomHtmlText, atom=True, rss=False)
    if history is not None:
        fg.register_extension("fh", _HistoryExtension, None, atom=True, rss=True)
        fg.fh.history = history
        fg.fh.current = urls.atom
        if history.self_atom:
            self_url = history.self_atom
    fg.id(urls.atom)
    fg.title(html_text(spec.title))
    fg.author({"name": name_text(feed_author(spec))})
    # feedgen uses the last link as RSS's channel <link>: the site must come last.
    fg.link(href=self_url, rel="self", type=self_type)
    _add_hubs(fg, spec.hubs)
    fg.link(href=urls.site, rel="alternate", type="text/html")
    fg.description(html_text(spec.description or spec.title))
    if spec.language:
        fg.language(spec.language)
    fg.generator(GENERATOR, version=__version__)
    fg.updated(_zulu(feed_updated(entries) if updated is None else updated))
    for entry in entries:
        _add_entry(fg, spec, entry)
    return fg


def _add_hubs(fg: Any, hubs: Sequence[str]) -> None:
    """WebSub discovery: ``<link rel="hub">`` in Atom, ``<atom:link rel="hub">`` in RSS."""
    if not hubs:
        return
    for hub in hubs:
        fg.link(href=hub, rel="hub")
    fg.register_extension("websub", _RssHubs, atom=False, rss=True)
    fg.websub.hubs = tuple(hubs)


class _RssHubs:
    """feedgen writes only the self link as atom:link in RSS; this adds the hubs beside it."""

    hubs: tuple[str, ...] = ()

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_rss(self, feed: Any) -> Any:
        channel = feed[0]
        for hub in self.hubs:
            link = channel.makeelement(f"{{{ATOM_NS}}}link", {"href": hub, "rel": "hub"})
            channel.append(link)
        return feed


def _add_entry(fg: Any, spec: FeedSpec, entry: Entry) -> None:
    fe = fg.add_entry(order="append")
    fe.guid(entry.id, permalink=True)
    fe.title(html_text(entry.title))
    fe.link(href=entry.url, rel="alternate", type="text/html")
    when = _zulu(entry.published)
    fe.published(when)
    fe.updated(when)
    content = entry.content
    if content.summary:
        fe.summary(html_text(content.summary), type="html")
    if content.html:
        fe.content(content.html, type="html")
    author = name_text(content.author or spec.author or "")
    if author:
        fe.author({"name": author})
        fe.dc.dc_creator(author)
    fe.category(term=name_text(entry.source))
    if content.image:
        fe.media.thumbnail({"url": content.image}, group=None)


def render_atom(
    spec: FeedSpec,
    entries: Sequence[Entry],
    urls: FeedUrls,
    *,
    history: History | None = None,
    memo: Fragments | None = None,
) -> bytes:
    """The Atom document; with ``history``, its RFC 5005 links (an archive page's too).
    ``memo``: the entries' bytes from this document's last renders (splice.py)."""
    return _feedgen(spec, entries, urls, history, memo, atom=True)


def render_rss(
    spec: FeedSpec,
    entries: Sequence[Entry],
    urls: FeedUrls,
    *,
    history: History | None = None,
    memo: Fragments | None = None,
) -> bytes:
    """The RSS 2.0 document; with ``history``, ``atom:link rel="prev-archive"``."""
    return _feedgen(spec, entries, urls, history, memo, atom=False)


def _feedgen(
    spec: FeedSpec,
    entries: Sequence[Entry],
    urls: FeedUrls,
    history: History | None,
    memo: Fragments | None,
    *,
    atom: bool,
) -> bytes:
    """feedgen's Atom or RSS document, spliced from ``memo`` where it can be."""
    self_url, self_type = (
        (urls.atom, "application/atom+xml") if atom else (urls.rss, "application/rss+xml")
    )
    updated = feed_updated(entries)  # of all the entries, whichever ``render`` is given

    def render(chosen: Sequence[Entry]) -> bytes:
        fg = _generator(spec, chosen, urls, self_url, self_type, history, updated)
        data: bytes = fg.atom_str(pretty=True) if atom else fg.rss_str(pretty=True)
        return data

    if memo is None or not entries:
        return render(entries)
    # An entry's bytes depend on it and on the feed's author (its fallback author).
    keys = [(spec.author, entry) for entry in entries]
    return memo.splice(entries, keys, render, ATOM_ENTRY if atom else RSS_ITEM)


def render_json(
    spec: FeedSpec,
    entries: Sequence[Entry],
    urls: FeedUrls,
    *,
    history: History | None = None,
    memo: Fragments | None = None,
) -> bytes:
    """The JSON Feed; with ``history``, ``next_url`` to the next (older) archive page.

    Written as ``json.dumps(feed, indent=2)`` writes it, an item at a time, so that ``memo``
    can keep each item's text (tests/test_splice.py compares it with ``json.dumps``)."""
    feed: dict[str, Any] = {
        "version": JSONFEED_VERSION,
        "title": spec.title,
        "home_page_url": urls.site,
        "feed_url": urls.json,
        "description": spec.description or spec.title,
        "authors": [{"name": name_text(feed_author(spec))}],
    }
    if spec.language:
        feed["language"] = spec.language
    if spec.hubs:
        feed["hubs"] = [{"type": "WebSub", "url": hub} for hub in spec.hubs]
    if history is not None and history.prev_json:
        feed["next_url"] = history.prev_json
    head = json.dumps(feed, ensure_ascii=False, indent=2)[: -len("\n}")].encode()
    keys = [(spec.author, entry) for entry in entries]
    if memo is None:
        items = [_json_item(spec, entry) for entry in entries]
    else:
        items = memo.each(keys, lambda i: _json_item(spec, entries[i]))
    body = b"[\n    " + b",\n    ".join(items) + b"\n  ]" if items else b"[]"
    return head + b',\n  "items": ' + body + b"\n}\n"


def _json_item(spec: FeedSpec, entry: Entry) -> bytes:
    """One item as it stands in the feed's ``items`` (indented two levels)."""
    when = rfc3339(entry.published)
    item: dict[str, Any] = {
        "id": entry.id,
        "url": entry.url,
        "title": entry.title,
        "content_html": entry.content.html,
        "summary": entry.content.summary,
    }
    if entry.content.image:
        item["image"] = entry.content.image
    item["date_published"] = when
    item["date_modified"] = when
    author = name_text(entry.content.author or spec.author or "")
    if author:
        item["authors"] = [{"name": author}]
    item["tags"] = [name_text(entry.source)]
    # JSON strings hold no raw newline: every newline is indentation, one level deeper here.
    return json.dumps(item, ensure_ascii=False, indent=2).replace("\n", "\n    ").encode()
