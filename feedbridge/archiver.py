"""I/O: keeps every feed's RFC 5005 archive documents (``OUT/NAME/archive/``) current.

Incremental: triggers on the index's ``dumps`` table log the (source, time, id) of every dump
row stored or forgotten (``archive_dirty``).  A build redoes only the months those touch (and
the months of other dumps with the same entry id, whose winner may change), plus the months of
dumps whose future time has come, and renders only pages whose entries or links changed; a
month that gains or loses a page also re-links its neighbours.  A feed seen for the first
time, or whose settings changed, is archived whole.  Pages are cut by ``feedbridge.archive``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from feedbridge import __version__
from feedbridge.archive import (
    ARCHIVE_DIR,
    Page,
    PageKey,
    Site,
    chain,
    cut,
    feed_history,
    fit,
    month_bounds,
    month_of,
    page_history,
    render_page,
    shrink,
)
from feedbridge.config import feed_urls
from feedbridge.errors import CorruptIndexError, PublishError
from feedbridge.index import ARCHIVE_ID_INDEX, DbRow, Index, Row, from_db, transaction
from feedbridge.model import Content, FeedSpec, FeedUrls, History, digest, plain
from feedbridge.progress import Bar, Progress, no_progress
from feedbridge.publish import file_signature, remove_output, write_if_changed
from feedbridge.splice import Slots

logger = logging.getLogger(__name__)

#: An archive page's Atom document, JSON Feed and web page.
SUFFIXES = (".xml", ".json", ".html")
#: Bodies cleaned per batch in a cold archive: bounds the memory a batch holds.
BATCH = 1024
#: Threads writing archive pages, and rendered pages waiting for them at most.
_WRITERS = 8
_PENDING = 6
#: How often a feed's months are redone when dumps turn out bad as their bodies are read.
_RETRIES = 3

#: An entry's place in a feed's order, ``(published, rel)``: the larger, the newer.
Key = tuple[int, str]

#: Loads cleaned bodies of rows (cleaning and caching what the cache lacks); a row whose body
#: cannot be had is left out, and the index learns what became of it.
Loader = Callable[[list[Row]], dict[str, Content]]


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed's archive as the last build left it."""

    settings: str
    #: The ``now`` it was current at.
    seen: int
    #: The oldest entry the feed showed, None when the feed showed every entry.
    boundary: Key | None


@dataclass(frozen=True, slots=True)
class _FeedPass:
    """One feed as ``update`` hands it on: its URLs, the fingerprint of its settings, and what
    the feed itself shows (newest first)."""

    spec: FeedSpec
    urls: FeedUrls
    settings: str
    shown: Sequence[Row]


@dataclass(frozen=True, slots=True)
class Stored:
    """A page as the last build left it."""

    fingerprint: str
    #: ``file_signature`` of its files, as JSON (decoded only for a page whose fingerprint
    #: matches: a feed has hundreds of pages, a build looks at one or two).
    files: str
    #: Names of the pages it links to (older, newer), "" for none.
    links: tuple[str, str]

    def signature(self) -> list[list[object]]:
        """``files`` decoded; CorruptIndexError if it is not what ``file_signature`` gives."""
        try:
            decoded = json.loads(self.files)
        except ValueError as e:
            raise CorruptIndexError(f"archive page files do not decode: {self.files!r:.200}") from e
        if type(decoded) is not list or not all(type(f) is list for f in decoded):
            raise CorruptIndexError(f"archive page files are not a list: {self.files!r:.200}")
        return decoded


@dataclass(slots=True)
class Outcome:
    """What the archives of one build did."""

    histories: dict[str, History | None] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: Sources whose archived feeds are all current: every body of them stays cached.
    sources: set[str] = field(default_factory=set)


def settings_fingerprint(spec: FeedSpec, urls: FeedUrls, pages: str = "") -> str:
    """What every page of a feed depends on (``pages``: the site title and templates)."""
    return digest([__version__, plain(spec), plain(urls), pages])


def page_fingerprint(settings: str, rows: Sequence[Row], history: History) -> str:
    return digest([settings, [r.shown for r in rows], plain(history)])


def _newest_key(row: Row) -> Key:
    return (row.published or 0, row.rel)


def _boundary(spec: FeedSpec, shown: Sequence[Row]) -> Key | None:
    """The oldest entry a full feed shows (``shown``: newest first): its archive holds every
    entry older than that (RFC 5005's subscription document and archive documents share no
    entry).  None when the feed shows every entry it has: its archive is empty."""
    return _newest_key(shown[-1]) if shown and len(shown) >= spec.limit else None


def _dump_key(key: Key | None) -> str:
    return json.dumps(list(key)) if key else ""


def _load_key(text: object) -> Key | None:
    try:
        value = json.loads(text) if isinstance(text, str) and text else None
    except ValueError:
        return None
    if isinstance(value, list) and len(value) == 2:
        published, rel = value
        if type(published) is int and type(rel) is str:
            return (published, rel)
    return None


def winners(rows: Iterable[Row]) -> dict[str, Row]:
    """The row that stands for each entry id: the newest time, then the later path."""
    best: dict[str, Row] = {}
    for row in rows:
        if row.id is None:
            continue
        held = best.get(row.id)
        if held is None or _newest_key(row) > _newest_key(held):
            best[row.id] = row
    return best


class Archiver:
    """Archive documents of one output, kept with the state in its index."""

    def __init__(
        self,
        index: Index,
        out: Path,
        base_url: str,
        load: Loader,
        *,
        site: Site,
        progress: Progress = no_progress,
        fragments: Slots | None = None,
    ) -> None:
        self.index = index
        #: Where the newest page of each feed keeps its entries' rendered bytes (splice.py).
        self.fragments = fragments
        self.out = out
        self.base_url = base_url
        self.site = site
        self.load = load
        self.progress = progress
        #: Each feed's ``history`` as its pages stood after the last ``update`` that changed
        #: them (a build of one new dump leaves the other feeds' pages alone).
        self._histories: dict[str, History | None] = {}
        #: The bar of the feeds archived whole in the current ``update``.
        self.bar: Bar = no_progress(0, "", "")

    # -- state ------------------------------------------------------------------------------

    def _dirty(self) -> tuple[int, list[tuple[str, int | None, str | None]]]:
        rows = self.index.db.execute(
            "SELECT rowid, source, published, id FROM archive_dirty ORDER BY rowid"
        ).fetchall()
        for r in rows:
            if not (
                type(r[0]) is int
                and type(r[1]) is str
                and (r[2] is None or type(r[2]) is int)
                and (r[3] is None or type(r[3]) is str)
            ):
                raise CorruptIndexError(f"a row of the archive_dirty table: {r!r:.200}")
        last = rows[-1][0] if rows else 0
        return last, [(r[1], r[2], r[3]) for r in rows]

    def _feeds(self) -> dict[str, FeedState]:
        """Each feed's archive state; CorruptIndexError for a row this code never writes."""
        sql = "SELECT feed, fingerprint, seen, boundary FROM archive_feeds"
        states = {}
        for r in self.index.db.execute(sql):
            if not (type(r[0]) is str and type(r[1]) is str and type(r[2]) is int):
                raise CorruptIndexError(f"a row of the archive_feeds table: {r!r:.200}")
            states[r[0]] = FeedState(r[1], r[2], _load_key(r[3]))
        return states

    def _crossed(self, spec: FeedSpec, old: Key | None, new: Key) -> set[str]:
        """Months of the entries that moved between the feed and its archive since the last
        build (``old`` to ``new``): usually the newest archive page's month alone."""
        if old is None or old == new:
            return set()
        low, high = min(old, new)[0], max(old, new)[0]
        sql = "SELECT DISTINCT published FROM dumps WHERE source = ? AND published BETWEEN ? AND ?"
        months = set()
        for source in spec.sources:
            for (published,) in self.index.db.execute(sql, (source, low, high)):
                months.add(month_of(datetime.fromtimestamp(published, UTC)))
        return months

    def _pages(self, feed: str) -> dict[PageKey, Stored]:
        """A feed's pages as the index holds them; CorruptIndexError for a row this code never
        writes (its ``files`` are decoded when they are compared: ``Stored.signature``)."""
        sql = (
            "SELECT month, part, fingerprint, files, older, newer FROM archive_pages WHERE feed = ?"
        )
        pages = {}
        for r in self.index.db.execute(sql, (feed,)):
            if not (type(r[1]) is int and all(type(v) is str for v in (r[0], *r[2:]))):
                raise CorruptIndexError(f"a row of the archive_pages table: {r!r:.200}")
            pages[PageKey(r[0], r[1])] = Stored(r[2], r[3], (r[4], r[5]))
        return pages

    def history(self, feed: str) -> History | None:
        """A feed's links to its archive as its pages stand: the newest page, entries in all."""
        r = self.index.db.execute(
            "SELECT month, part FROM archive_pages WHERE feed = ? ORDER BY month DESC, part DESC",
            (feed,),
        ).fetchone()
        total = self.index.db.execute(
            "SELECT coalesce(sum(entries), 0) FROM archive_pages WHERE feed = ?", (feed,)
        ).fetchone()[0]
        return feed_history(self.base_url, feed, PageKey(r[0], r[1]) if r else None, total)

    # -- rows -------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[object]) -> Iterator[Row]:
        for r in self.index.db.execute(sql, tuple(params)):
            yield from_db(r)

    def _by_ids(self, ids: Iterable[str], keep: Callable[[DbRow], bool] | None = None) -> list[Row]:
        """Every accepted dump with one of these entry ids (any source, any time); with
        ``keep``, only the stored rows it keeps (judged before they are decoded)."""
        db = self.index.db
        db.execute("CREATE TEMP TABLE IF NOT EXISTS archive_ids (id TEXT PRIMARY KEY)")
        db.execute("DELETE FROM archive_ids")
        db.executemany("INSERT OR IGNORE INTO archive_ids VALUES (?)", ((i,) for i in ids))
        sql = (
            "SELECT dumps.* FROM archive_ids CROSS JOIN dumps INDEXED BY archive_dumps_id"
            " ON dumps.id = archive_ids.id WHERE dumps.published IS NOT NULL"
        )
        return [from_db(r) for r in db.execute(sql) if keep is None or keep(r)]

    def _in_months(self, spec: FeedSpec, months: Iterable[str], now: int) -> list[Row]:
        sql = (
            "SELECT * FROM dumps WHERE source = ? AND published >= ? AND published < ?"
            " AND published <= ?"
        )
        found: list[Row] = []
        for month in sorted(set(months)):
            start, end = month_bounds(month)
            for source in spec.sources:
                found.extend(self._rows(sql, (source, start, end, now)))
        return found

    def _month_rows(
        self, spec: FeedSpec, months: set[str], now: int, boundary: Key
    ) -> dict[str, list[Row]]:
        """The rows each of ``months`` shows: one per entry id, the id's winner in the feed,
        if it is older than ``boundary`` (the feed shows the others)."""
        rows = self._in_months(spec, months, now)
        sources = set(spec.sources)
        spans = [month_bounds(month) for month in months]

        def rival(r: DbRow) -> bool:
            """A dump of the feed's id, outside ``months`` (whose dumps are in ``rows``)."""
            source, published = r[1], r[7]
            if type(published) is not int:
                return True  # decoded (and judged) as it is
            elsewhere = not any(start <= published < end for start, end in spans)
            return source in sources and published <= now and elsewhere

        rivals = self._by_ids({r.id for r in rows if r.id}, rival)
        best = winners([*rows, *rivals])
        shown: dict[str, list[Row]] = {m: [] for m in months}
        for row in rows:
            if row.id is not None and best.get(row.id) == row and _newest_key(row) < boundary:
                shown[month_of(row.published_at)].append(row)
        return shown

    def _all_rows(self, spec: FeedSpec, now: int, boundary: Key) -> dict[str, list[Row]]:
        shown: dict[str, list[Row]] = defaultdict(list)
        for row in winners(self.index.newest(spec.sources, now)).values():
            if _newest_key(row) < boundary:
                shown[month_of(row.published_at)].append(row)
        return dict(shown)

    def _touched(
        self,
        spec: FeedSpec,
        dirty: Sequence[tuple[str, int | None, str | None]],
        seen: int,
        now: int,
    ) -> set[str]:
        """Months of a feed whose pages may have changed since the last build."""
        sources = set(spec.sources)
        months: set[str] = set()
        ids: set[str] = set()
        for source, published, entry_id in dirty:
            if source not in sources:
                continue
            if published is not None and published <= max(now, seen):
                months.add(month_of(datetime.fromtimestamp(published, UTC)))
            if entry_id is not None:
                ids.add(entry_id)
        if now != seen:  # dumps whose time has come since (or, with a clock set back, not yet)
            sql = "SELECT * FROM dumps WHERE source = ? AND published > ? AND published <= ?"
            for source in spec.sources:
                for row in self._rows(sql, (source, min(seen, now), max(seen, now))):
                    months.add(month_of(row.published_at))
                    ids.add(row.id or "")
        return months | self._months_of_ids(spec, ids, now)

    def _altered(self, feed: str) -> tuple[set[str], dict[PageKey, Stored]]:
        """Months of a feed whose page files are not as they were written: deleted or edited
        behind feedbridge's back (one stat per file: a full build's check, as its scan is);
        and the pages as the index holds them (``_pages``), read for it."""
        stored = self._pages(feed)
        months = {
            key.month
            for key, page in stored.items()
            if page.signature() != file_signature(self._files(feed, key))
        }
        return months, stored

    def _files(self, feed: str, key: PageKey) -> list[Path]:
        """A page's files: its Atom document, JSON Feed and web page."""
        return [self.out / feed / ARCHIVE_DIR / f"{key.name}{suffix}" for suffix in SUFFIXES]

    def _months_of_ids(self, spec: FeedSpec, ids: Iterable[str], now: int) -> set[str]:
        """Months of a feed's dumps with one of these entry ids, whose winner may change."""
        sources = set(spec.sources)
        return {
            month_of(row.published_at)
            for row in (self._by_ids(ids) if ids else ())
            if row.source in sources and (row.published or 0) <= now
        }

    # -- the pass ---------------------------------------------------------------------------

    def update(
        self,
        feeds: Sequence[FeedSpec],
        now: int,
        selected: Mapping[str, Sequence[Row]],
        skip: Iterable[str] = (),
        *,
        pages: str = "",
        verify: bool = False,
    ) -> Outcome:
        """Bring the archives of ``feeds`` up to date; ``selected`` holds what each feed shows
        (``build.select``), newest first: its archive holds every older entry.  Feeds showing
        a source in ``skip`` (a folder the scan could not read) keep theirs as they are.
        Archives of feeds that are gone or no longer archived are removed.  With ``verify``
        (a full build's), pages whose files were deleted or edited since are made again."""
        outcome = Outcome()
        if any(spec.archive for spec in feeds):
            with self.index.writer:
                self.index.db.execute(ARCHIVE_ID_INDEX)
        last, dirty = self._dirty()
        states = self._feeds()
        skipped = set(skip)
        names = {spec.name for spec in feeds if spec.archive}
        urls = {spec.name: feed_urls(spec, self.base_url) for spec in feeds}
        settings = {spec.name: settings_fingerprint(spec, urls[spec.name], pages) for spec in feeds}
        whole = [
            spec
            for spec in feeds
            if spec.archive
            and not skipped & set(spec.sources)
            and (spec.name not in states or states[spec.name].settings != settings[spec.name])
        ]
        # One bar for the feeds archived whole (a first build): reading and cleaning the
        # bodies of every entry older than what the feeds show.
        total = sum(
            max(0, self.index.count_shown(spec.sources, now) - spec.limit) for spec in whole
        )
        self.bar = self.progress(total, "archiving", "entry") if total else no_progress(0, "", "")
        for name in sorted(set(states) - names):
            outcome.removed.extend(self._remove(name))
        for spec in feeds:
            if not spec.archive:
                outcome.histories[spec.name] = None
                continue
            if skipped & set(spec.sources):
                outcome.histories[spec.name] = self.history(spec.name)
                continue
            feed = _FeedPass(spec, urls[spec.name], settings[spec.name], selected[spec.name])
            # Taken out first: a pass that fails half-way leaves no history to trust.
            had = spec.name in self._histories
            history = self._histories.pop(spec.name, None)
            state = states.get(spec.name)
            if self._feed(feed, now, dirty, state, outcome, verify=verify) or not had:
                history = self.history(spec.name)
            self._histories[spec.name] = outcome.histories[spec.name] = history
            outcome.sources.update(spec.sources)
        self.bar.close()
        with self.index.writer, transaction(self.index.db):
            keep = sorted(skipped)
            self.index.db.execute(
                "DELETE FROM archive_dirty WHERE rowid <= ?"
                f" AND source NOT IN ({','.join('?' * len(keep))})",
                (last, *keep),
            )
        return outcome

    def _feed(
        self,
        feed: _FeedPass,
        now: int,
        dirty: Sequence[tuple[str, int | None, str | None]],
        state: FeedState | None,
        outcome: Outcome,
        *,
        verify: bool = False,
    ) -> bool:
        """Bring one feed's archive up to date; False if its pages stand as they were."""
        spec, urls, settings = feed.spec, feed.urls, feed.settings
        boundary = _boundary(spec, feed.shown)
        if boundary is None:  # the feed shows every entry: no archive
            if state is None or state.boundary is not None or state.settings != settings:
                outcome.removed.extend(self._remove(spec.name))
            self._seen(spec.name, settings, now, None)
            return True
        whole = state is None or state.settings != settings or state.boundary is None
        stored = None  # the pages as the index holds them: read once, when needed
        if whole:
            if state is not None:
                # A build killed while it rewrites the archive must not leave a state that
                # says the archive is current: the next build then archives it whole again.
                self._seen(spec.name, "", state.seen, state.boundary)
            shown = self._all_rows(spec, now, boundary)
        else:
            assert state is not None
            touched = self._touched(spec, dirty, state.seen, now)
            touched |= self._crossed(spec, state.boundary, boundary)
            if verify:
                altered, stored = self._altered(spec.name)
                touched |= altered
            if not touched:  # nothing of this feed changed: its pages stand
                self._seen(spec.name, settings, now, boundary)
                return False
            shown = self._month_rows(spec, touched, now, boundary)
        stored = self._pages(spec.name) if stored is None else stored
        pages: dict[PageKey, Page] = {}
        page_rows: dict[PageKey, list[Row]] = {}
        redone: set[str] = set()  # every month cut again, whose stored pages are replaced
        for attempt in range(_RETRIES):
            redone.update(shown)
            failed = self._cut(shown, pages, page_rows, whole=whole)
            if not failed or attempt + 1 == _RETRIES:
                break
            # Bodies that turned out bad: the index knows; redo their months, and the months
            # of dumps of their ids (an older one stands for the id now).
            months = {month_of(r.published_at) for r in failed}
            months |= self._months_of_ids(spec, {r.id for r in failed if r.id}, now)
            shown = self._month_rows(spec, months, now, boundary)
        kept = {} if whole else {k: v for k, v in stored.items() if k.month not in redone}
        while True:  # months whose pages' neighbours changed are linked again
            links = {key: (older, newer) for key, older, newer in chain([*kept, *pages])}
            stale = {key.month for key in kept if stored[key].links != _names(links[key])}
            if not stale:
                break
            shown = self._month_rows(spec, stale, now, boundary)
            self._cut(shown, pages, page_rows, whole=False)
            kept = {k: v for k, v in kept.items() if k.month not in stale}
        self._publish(spec, urls, settings, pages, page_rows, links, stored, outcome)
        gone = set(stored) - set(kept) - set(pages)
        outcome.removed.extend(self._unlink(spec.name, gone))
        if whole:
            outcome.removed.extend(self._sweep(spec.name, {*kept, *pages}))
        self._seen(spec.name, settings, now, boundary)
        self._forget(spec.name, gone)
        return True

    def _seen(self, feed: str, settings: str, now: int, boundary: Key | None) -> None:
        """Record that a feed's archive is current with these settings at ``now``."""
        with self.index.writer:
            self.index.db.execute(
                "INSERT OR REPLACE INTO archive_feeds VALUES (?,?,?,?)",
                (feed, settings, now, _dump_key(boundary)),
            )

    def _forget(self, feed: str, keys: Iterable[PageKey]) -> None:
        """Drop these pages of a feed from the index (their files are gone)."""
        with self.index.writer, transaction(self.index.db):
            self.index.db.executemany(
                "DELETE FROM archive_pages WHERE feed = ? AND month = ? AND part = ?",
                ((feed, k.month, k.part) for k in keys),
            )

    def _cut(
        self,
        shown: dict[str, list[Row]],
        pages: dict[PageKey, Page],
        page_rows: dict[PageKey, list[Row]],
        *,
        whole: bool,
    ) -> list[Row]:
        """Cut the months in ``shown`` into pages (into ``pages``); returns the rows whose
        body could not be had."""
        failed: list[Row] = []
        total = sum(len(rows) for rows in shown.values())
        bar = self.bar if whole else no_progress(total, "archiving", "entry")
        try:
            months = sorted(shown)
            batch: list[str] = []
            size = 0
            for i, month in enumerate(months):
                batch.append(month)
                size += len(shown[month])
                if size < BATCH and i + 1 < len(months):
                    continue
                costs = self._costs([r for m in batch for r in shown[m]])
                for m in batch:
                    for key in [k for k in pages if k.month == m]:
                        del pages[key]
                        page_rows.pop(key, None)
                    good = [r for r in shown[m] if r.rel in costs]
                    failed.extend(r for r in shown[m] if r.rel not in costs)
                    items = [(r.published_at, r.rel, costs[r.rel]) for r in good]
                    for part, chunk in enumerate(cut(items), start=1):
                        # Only the key and rows: bodies are read from the cache when the page
                        # is rendered, so a first build never holds a whole feed's bodies.
                        key = PageKey(m, part)
                        pages[key] = Page(key, ())
                        page_rows[key] = [good[i] for i in reversed(chunk)]
                    bar.update(len(shown[m]))
                batch, size = [], 0
        finally:
            if not whole:
                bar.close()
        return failed

    def _costs(self, rows: list[Row]) -> dict[str, int]:
        """Each row's page cost (``archive.fit``), from the index when its file is unchanged,
        else from its body (read and cleaned now if need be).  A row whose body cannot be had
        is left out."""
        db = self.index.db
        wanted = {r.rel: (r.size, r.mtime_ns) for r in rows}
        sql = "SELECT rel, size, mtime_ns, cost FROM archive_costs"
        costs: dict[str, int] = {
            rel: cost
            for rel, _, _, cost in self.index.current_rows(sql, wanted)
            if type(cost) is int
        }
        need = [r for r in rows if r.rel not in costs]
        if need:
            contents = self.load(need)
            new = [(r, fit(r.entry(contents[r.rel]))[1]) for r in need if r.rel in contents]
            with self.index.writer, transaction(db):
                db.executemany(
                    "INSERT OR REPLACE INTO archive_costs VALUES (?,?,?,?)",
                    ((r.rel, r.size, r.mtime_ns, cost) for r, cost in new),
                )
            costs.update((r.rel, cost) for r, cost in new)
        return costs

    def _publish(
        self,
        spec: FeedSpec,
        urls: FeedUrls,
        settings: str,
        pages: dict[PageKey, Page],
        page_rows: dict[PageKey, list[Row]],
        links: dict[PageKey, tuple[PageKey | None, PageKey | None]],
        stored: dict[PageKey, Stored],
        outcome: Outcome,
    ) -> None:
        states = []
        self._check_folder(spec.name)
        with _Writes(outcome.written) as writes:
            for key in sorted(pages, key=lambda k: (k.month, k.part)):
                older, newer = links[key]
                history = page_history(self.base_url, spec.name, key, older, newer)
                fp = page_fingerprint(settings, page_rows[key], history)
                paths = self._files(spec.name, key)
                old = stored.get(key)
                if old is None or old.fingerprint != fp or old.signature() != file_signature(paths):
                    newest = newer is None and self.fragments is not None
                    documents = render_page(
                        spec, urls, self._page(key, page_rows[key]), history,
                        older=older, newer=newer, site=self.site,
                        fragments=self.fragments if newest else None,
                    )  # fmt: skip
                    for path, suffix in zip(paths, SUFFIXES, strict=True):
                        writes.submit(path, documents[suffix])
                count = len(page_rows[key])
                names = _names(links[key])
                states.append((spec.name, key.month, key.part, fp, *names, count, paths))
        rows = [(*state[:4], json.dumps(file_signature(state[7])), *state[4:7]) for state in states]
        with self.index.writer, transaction(self.index.db):
            self.index.db.executemany(
                "INSERT OR REPLACE INTO archive_pages VALUES (?,?,?,?,?,?,?,?)", rows
            )

    def _page(self, key: PageKey, rows: list[Row]) -> Page:
        """A page with its entries, their bodies from the cache (``_cut`` just filled it)."""
        contents = self.index.contents(rows)
        missing = [r for r in rows if r.rel not in contents]
        if missing:  # cleaned once for its size, and since forgotten by the cache
            contents.update(self.load(missing))
        lost = [r.rel for r in rows if r.rel not in contents]
        if lost:  # its body cannot be had any more: the index learnt why; next build redoes it
            logger.warning("archive page %s: %d bodies could not be read", key.name, len(lost))
        return Page(key, tuple(shrink(r.entry(contents[r.rel])) for r in rows if r.rel in contents))

    def _check_folder(self, feed: str) -> None:
        """``OUT/NAME/archive`` must be a real folder (or not exist yet): pages written
        through a symlink would land outside OUT (where no server following no symlink finds
        them) and a sweep would delete files of someone else's there."""
        folder = self.out / feed / ARCHIVE_DIR
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            what = "a symlink" if folder.is_symlink() else "not a folder"
            raise PublishError(
                f"cannot write {folder}: {what}; feedbridge keeps its archive pages there"
            )

    # -- removal ----------------------------------------------------------------------------

    def _unlink(self, feed: str, keys: Iterable[PageKey]) -> list[str]:
        """Remove the files of these pages of a feed (oldest first); those that were there."""
        ordered = sorted(keys, key=lambda k: (k.month, k.part))
        return [str(p) for key in ordered for p in self._files(feed, key) if remove_output(p)]

    def _sweep(self, feed: str, keep: Iterable[PageKey]) -> list[str]:
        """Remove page files of a feed that no page of it has now (left by an index lost)."""
        names = {f"{k.name}{s}" for k in keep for s in SUFFIXES}
        folder = self.out / feed / ARCHIVE_DIR
        removed: list[str] = []
        if folder.is_symlink():  # not ours: nothing of ours is behind it (``_folder``)
            return removed
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for path in sorted(folder.iterdir()):
                stale = path.suffix in SUFFIXES and _is_page_name(path.stem)
                if stale and path.name not in names and remove_output(path):
                    removed.append(str(path))
        return removed

    def _remove(self, feed: str) -> list[str]:
        """Remove a feed's whole archive (the feed is gone, or no longer archived)."""
        self._histories.pop(feed, None)
        removed = self._sweep(feed, ())
        with contextlib.suppress(OSError):
            (self.out / feed / ARCHIVE_DIR).rmdir()
        with self.index.writer, transaction(self.index.db):
            self.index.db.execute("DELETE FROM archive_pages WHERE feed = ?", (feed,))
            self.index.db.execute("DELETE FROM archive_feeds WHERE feed = ?", (feed,))
        if removed:
            logger.info("feed %s: archive removed (%d files)", feed, len(removed))
        return removed


class _Writes:
    """Writes files (``write_if_changed``: archive pages have no ``.gz`` twins, see the README,
    "Archives") on a few threads: each write waits on its fsyncs, and a disk commits concurrent
    ones together.  At most ``_PENDING`` rendered documents wait in memory; a failed write
    raises its PublishError from ``submit`` or the ``with`` exit."""

    def __init__(self, written: list[str]) -> None:
        self.written = written
        self.pool = ThreadPoolExecutor(_WRITERS, thread_name_prefix="archive-write")
        self.pending: deque[tuple[Path, Future[bool]]] = deque()

    def __enter__(self) -> _Writes:
        return self

    def submit(self, path: Path, data: bytes) -> None:
        while len(self.pending) >= _PENDING:
            self._finish()
        self.pending.append((path, self.pool.submit(write_if_changed, path, data)))

    def _finish(self) -> None:
        path, future = self.pending.popleft()
        if future.result():
            self.written.append(str(path))

    def __exit__(self, *exc: object) -> None:
        try:
            while self.pending and exc[0] is None:
                self._finish()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _names(links: tuple[PageKey | None, PageKey | None]) -> tuple[str, str]:
    older, newer = links
    return (older.name if older else "", newer.name if newer else "")


def _is_page_name(stem: str) -> bool:
    month, _, part = stem.rpartition("-")
    return len(month) == 7 and month[4] == "-" and part.isdigit()
