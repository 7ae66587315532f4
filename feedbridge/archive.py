"""Pure: how a feed's whole history is cut into RFC 5005 archive documents.

Every accepted, non-future entry of a feed (one per entry id, as in the feed) belongs to one
archive page.  Pages are cut by the calendar month (UTC) of the entry's time, and a month is
split, oldest entry first, into parts of at most ``MAX_ENTRIES`` entries and ``PAGE_BUDGET``
estimated bytes.  A page's name (``2024-05-1``) never changes while its month keeps the same
entries before it, so:

- a dump newer than all others only changes the newest page (or starts the next one);
- a dump edited, added or deleted in an old month only changes the pages of that month (and,
  when the month gains or loses a part, the links of the pages on either side);
- every other page keeps its bytes, so it can be cached forever.

Rendering goes through ``feedbridge.render`` (the only feedgen user), given the page's links.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from feedbridge.model import Content, Entry, FeedSpec, FeedUrls, History
from feedbridge.splice import Fragments, Slots

#: The folder of a feed's archive documents, inside ``OUT/NAME/``.
ARCHIVE_DIR = "archive"
#: No archive document is larger than this.
MAX_BYTES = 2 * 1024 * 1024
#: Room left on a page for its head (title, links, author) besides its entries.
HEAD_BYTES = 16 * 1024
PAGE_BUDGET = MAX_BYTES - HEAD_BYTES
#: At most this many entries on one page, as many as a feed shows by default: the newest page
#: is rendered again for every new dump, so its size is what a new dump costs (and a reader
#: fetches a page in one go).
MAX_ENTRIES = 50
#: Bytes an entry costs besides its escaped fields (tags, dates, author, category).
ENTRY_OVERHEAD = 1024
#: Characters of its title an entry too large for a page alone keeps (with an ellipsis).
TITLE_CAP = 1000


@dataclass(frozen=True, slots=True)
class PageKey:
    """Where a page sits: its month and its part (1, 2, ...) within the month."""

    month: str
    part: int

    @property
    def name(self) -> str:
        return f"{self.month}-{self.part}"


@dataclass(frozen=True, slots=True)
class Page:
    """One archive document: its key and its entries, newest first."""

    key: PageKey
    entries: tuple[Entry, ...]


def month_of(published: datetime) -> str:
    """The calendar month (UTC) an entry is archived under: ``YYYY-MM``."""
    return published.astimezone(UTC).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[int, int]:
    """The first second of ``month`` and the first second of the next month (Unix time)."""
    year, mon = (int(part) for part in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()), int(end.timestamp())


#: Bytes JSON writes as six-byte escapes (``\\n``, ``\\r``, ``\\t`` take two).
_JSON_CONTROLS = bytes(set(range(0x20)) - {0x09, 0x0A, 0x0D})


def _cost(text: str) -> int:
    """UTF-8 bytes of ``text`` once escaped, as XML character data (``& < >``) or as a JSON
    string (quotes, backslashes, controls), whichever is larger."""
    data = text.encode("utf-8", "surrogatepass")
    xml = 4 * data.count(b"&") + 3 * (data.count(b"<") + data.count(b">"))
    json = sum(data.count(c) for c in (b'"', b"\\", b"\n", b"\r", b"\t"))
    json += 5 * (len(data) - len(data.translate(None, _JSON_CONTROLS)))
    return len(data) + max(xml, json)


def entry_cost(entry: Entry) -> int:
    """An upper estimate of the bytes ``entry`` takes in an Atom or JSON archive page: its
    fields (the short ones twice, as attribute and text) measured as one text, since a page
    is one format, escaped one way throughout."""
    c = entry.content
    short = (entry.title, entry.id, entry.url, c.author or "")
    return ENTRY_OVERHEAD + _cost("".join((c.html, c.summary, c.image or "", *short, *short)))


def fit(entry: Entry) -> tuple[Entry, int]:
    """``entry`` as it can go on a page, and its cost: an entry too large for any page alone
    keeps its summary and link but not its body (the feed itself still carries the body);
    if that is still too large (a giant image URL, author or title), nor its image and
    author, and its title is cut to ``TITLE_CAP`` characters."""
    cost = entry_cost(entry)
    if cost <= PAGE_BUDGET:
        return entry, cost
    small = replace(entry, content=replace(entry.content, html=""))
    cost = entry_cost(small)
    if cost <= PAGE_BUDGET:
        return small, cost
    title = entry.title
    if len(title) > TITLE_CAP:
        title = title[: TITLE_CAP - 1].rstrip() + "…"
    smaller = replace(entry, title=title, content=Content(html="", summary=entry.content.summary))
    return smaller, entry_cost(smaller)


def shrink(entry: Entry) -> Entry:
    """``fit(entry)[0]``, without measuring an entry that surely fits (no character takes
    more than six bytes escaped): what rendering a page calls for each of its entries."""
    c = entry.content
    chars = len(c.html) + len(c.summary) + len(c.image or "")
    chars += 2 * (len(entry.title) + len(entry.id) + len(entry.url) + len(c.author or ""))
    if ENTRY_OVERHEAD + 6 * chars <= PAGE_BUDGET:
        return entry
    return fit(entry)[0]


def _oldest_first(entry: Entry) -> tuple[datetime, str]:
    return (entry.published, entry.id)


def cut_month(month: str, entries: Iterable[Entry], order: Sequence[str] = ()) -> list[Page]:
    """The pages of one month: its entries oldest first, greedily filled up to
    ``MAX_ENTRIES`` and ``PAGE_BUDGET``.  A page depends only on the entries before and on it,
    so a newer entry never moves an older one to another page.

    ``order`` gives the tie-break for entries of the same second (their dumps' paths), in the
    order the entries are given; otherwise the entry id breaks ties.
    """
    listed = [fit(e) for e in entries]
    keys = list(order) if order else [e.id for e, _ in listed]
    items = [(e.published, key, cost) for (e, cost), key in zip(listed, keys, strict=True)]
    return [
        Page(PageKey(month, part), tuple(listed[i][0] for i in reversed(chunk)))
        for part, chunk in enumerate(cut(items), start=1)
    ]


def cut(items: Sequence[tuple[datetime, str, int]]) -> list[list[int]]:
    """``cut_month`` on (time, tie-break, cost) of each entry: the indices of the items on
    each page, oldest first; what the archiver uses with sizes it has cached."""
    ranked = sorted(range(len(items)), key=lambda i: items[i][:2])
    pages: list[list[int]] = []
    size = 0
    for i in ranked:
        cost = items[i][2]
        if not pages or len(pages[-1]) >= MAX_ENTRIES or size + cost > PAGE_BUDGET:
            pages.append([])
            size = 0
        pages[-1].append(i)
        size += cost
    return pages


def chain(keys: Iterable[PageKey]) -> list[tuple[PageKey, PageKey | None, PageKey | None]]:
    """Every page with the page before it (older) and after it (newer), oldest first."""
    ordered = sorted(set(keys), key=lambda k: (k.month, k.part))
    return [
        (key, ordered[i - 1] if i else None, ordered[i + 1] if i + 1 < len(ordered) else None)
        for i, key in enumerate(ordered)
    ]


def page_path(feed: str, key: PageKey, suffix: str) -> str:
    """A page's path relative to OUT: ``NAME/archive/2024-05-1.xml``."""
    return f"{feed}/{ARCHIVE_DIR}/{key.name}{suffix}"


def page_url(base_url: str, feed: str, key: PageKey, suffix: str) -> str:
    return f"{base_url}{quote(feed, safe='')}/{ARCHIVE_DIR}/{key.name}{suffix}"


def feed_history(
    base_url: str, feed: str, newest: PageKey | None, archived: int = 0
) -> History | None:
    """The links of a feed's subscription documents: to the newest archive page (and, for its
    web page, how many entries the archive holds)."""
    if newest is None:
        return None
    return History(
        prev_atom=page_url(base_url, feed, newest, ".xml"),
        prev_json=page_url(base_url, feed, newest, ".json"),
        archived=archived,
        newest=newest.name,
    )


def page_history(
    base_url: str, feed: str, key: PageKey, older: PageKey | None, newer: PageKey | None
) -> History:
    """The links of one archive page: itself, the pages on either side (RFC 5005 section 4)."""
    return History(
        prev_atom=page_url(base_url, feed, older, ".xml") if older else None,
        prev_json=page_url(base_url, feed, older, ".json") if older else None,
        next_atom=page_url(base_url, feed, newer, ".xml") if newer else None,
        self_atom=page_url(base_url, feed, key, ".xml"),
        self_json=page_url(base_url, feed, key, ".json"),
    )


@dataclass(frozen=True, slots=True)
class Site:
    """What an archive page's HTML twin depends on besides its page: the site's title and
    the templates.  (Not the archive's size: that would change every page with every dump.)"""

    title: str
    templates: Path | None


def render_page(
    spec: FeedSpec,
    urls: FeedUrls,
    page: Page,
    history: History,
    *,
    older: PageKey | None,
    newer: PageKey | None,
    site: Site,
    fragments: Slots | None = None,
) -> dict[str, bytes]:
    """One archive page as its Atom and JSON Feed documents and its web page, by suffix.
    ``fragments``: where the feed's newest page keeps its entries' bytes (the page a new dump
    rewrites; splice.py), given for that page only."""
    from feedbridge.pages import ArchiveView, render_archive_page
    from feedbridge.render import render_atom, render_json

    view = ArchiveView(
        name=page.key.name,
        older=f"{older.name}.html" if older else None,
        newer=f"{newer.name}.html" if newer else None,
    )
    html = render_archive_page(
        spec,
        page.entries,
        urls,
        page=view,
        site_title=site.title,
        templates=site.templates,
    )
    # WebSub hubs are announced by the subscription documents only: no one subscribes to an
    # archive page, and a hub would be told of none of its changes.
    unhubbed = replace(spec, hubs=())

    def memo(suffix: str) -> Fragments | None:
        return fragments.slot(spec.name, f"{ARCHIVE_DIR}/newest{suffix}") if fragments else None

    return {
        ".xml": render_atom(unhubbed, page.entries, urls, history=history, memo=memo(".xml")),
        ".json": render_json(unhubbed, page.entries, urls, history=history, memo=memo(".json")),
        ".html": html,
    }
