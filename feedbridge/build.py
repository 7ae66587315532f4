"""One build: scan -> index -> select -> render -> publish.

Returns a BuildReport; a bad dump is a rejection in the report, never an exception through
the build.  Only configuration and output failures raise (ConfigError, PublishError).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path

from feedbridge import __version__
from feedbridge.archive import Site
from feedbridge.archiver import Archiver
from feedbridge.budget import Trim, fit
from feedbridge.compress import twin_path
from feedbridge.config import Config, feed_urls, resolve_feeds
from feedbridge.errors import SourceError
from feedbridge.index import DbRow, Index, Row, db_row, is_damage, pick, row_warnings
from feedbridge.model import (
    BuildReport,
    Content,
    Dated,
    Entry,
    FeedResult,
    FeedSpec,
    FeedUrls,
    History,
    Provenance,
    Rejection,
    digest,
    plain,
)
from feedbridge.pages import NEWEST, Headline, Listed, prepare, templates_digest
from feedbridge.progress import Progress, no_progress
from feedbridge.publish import Outputs, file_signature, remove_output, write_output
from feedbridge.scan import (
    FileStat,
    RootListing,
    folder_identity,
    index_key,
    is_dump_name,
    list_dumps,
    list_root,
    printable,
    read_dump,
    rejected,
    scan_all,
    stat_dump,
)
from feedbridge.splice import Slots
from feedbridge.workers import fork_pool
from feedbridge.workers import stop as stop_workers

logger = logging.getLogger(__name__)

FEED_FILES = ("atom.xml", "rss.xml", "feed.json")
#: A feed's web page, beside its feeds: ``OUT/NAME/index.html``.
PAGE_FILE = "index.html"
#: Key of the index page's state among the feeds' (no feed can be named so).
INDEX_PAGE = "index.html"
#: How often a feed's selection is redone when its dumps change under the build's feet.
_RESELECT = 3


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """One feed of a build: what it shows now, and whether its files already say so."""

    spec: FeedSpec
    urls: FeedUrls
    paths: list[Path]
    rows: list[Row]
    current: bool
    entries: int


@dataclass(frozen=True, slots=True)
class Target:
    """What to build: where the dumps are, where the feeds go, and how they are addressed."""

    dumps: Path
    out: Path
    base_url: str
    config: Config = field(default_factory=Config)


def fit_feed(
    spec: FeedSpec,
    entries: Sequence[Entry],
    urls: FeedUrls,
    render: Callable[[FeedSpec, Sequence[Entry], FeedUrls], bytes],
) -> tuple[bytes, Trim]:
    """One document of a feed, trimmed to the feed's byte budget (see budget.py)."""
    return fit(entries, lambda chosen: render(spec, chosen, urls), spec.max_feed_bytes)


def fingerprint(
    spec: FeedSpec,
    urls: FeedUrls,
    rows: Sequence[Row],
    pages: str = "",
    history: History | None = None,
) -> str:
    """Everything a rendered feed and its page depend on (``pages``: the site title and the
    templates; ``history``: its link to the newest archive page); equal fingerprints mean
    equal bytes."""
    data = [
        __version__,
        pages,
        plain(spec),
        plain(urls),
        [r.shown for r in rows],
        plain(history) if history else None,
    ]
    return digest(data)


@dataclass(frozen=True, slots=True)
class _Selection:
    """What ``select`` gave for a feed at ``now``, with its sources' index ``version`` then
    and the time of their next dump dated after ``now`` (None: none)."""

    spec: FeedSpec
    version: tuple[int, ...]
    now: int
    due: int | None
    rows: list[Row]
    #: ``fingerprint`` of these rows, by the feed's URLs, ``pages_key`` and history.
    fingerprints: dict[tuple[FeedUrls, str, History | None], str] = field(default_factory=dict)


def select(index: Index, spec: FeedSpec, now: int) -> list[Row]:
    """The newest ``limit`` dumps of a feed, one per entry id (newest time, then later path)."""
    return pick(index.newest(spec.sources, now), spec.limit)


def _signature(paths: Iterable[Path]) -> list[list[object]]:
    """Size and mtime of a feed's files and their ``.gz`` twins: a file or twin changed or
    deleted behind feedbridge's back makes the feed be written again."""
    return file_signature(f for path in paths for f in (path, twin_path(path)))


def _headlines(rows: Sequence[Row]) -> tuple[Headline, ...]:
    """The newest entries of a feed as the index shows them (the same fields as its entries)."""
    return tuple(Headline(r.title or "", r.url or "", r.published_at) for r in rows[:NEWEST])


#: Below this many bodies to clean, forking workers costs more than it saves.
PARALLEL_MIN_BODIES = 64
#: Bodies cleaned at once for archives: bounds the memory of a cold build.
_BATCH = 4096


def load_content(root: Path, row: Row, max_bytes: int) -> Content | Row | None:
    """A selected dump's cleaned body; or, when the file changed since the index saw it, its
    new Row (None if it is gone), for the index to learn.  Total, like ``read_dump``: a file
    that cannot be read or cleaned any more comes back as its rejection."""
    from feedbridge.content import clean_html

    try:
        current = stat_dump(root, row.rel)
    except OSError as e:
        return rejected(row, 1, f"cannot read: {e.strerror or e}", retry=True)
    if current is None:
        return None
    try:
        new, dump = read_dump(root, current, max_bytes=max_bytes, head_only=False)
    except FileNotFoundError:
        return None
    if dump is None or replace(new, warnings=()) != replace(row, warnings=()):
        return new
    try:
        return clean_html(dump.body or "", base_url=row.url or "")
    except Exception as e:  # one dump's failure is that dump's rejection
        return rejected(new, 1, f"cannot clean the body: {type(e).__name__}: {e}")


def _worker_count() -> int:
    return min(os.cpu_count() or 1, 8)


def _load_job(job: tuple[Path, Row, int]) -> Content | Row | None:
    return load_content(*job)


@dataclass(frozen=True, slots=True)
class SourceFeeds:
    """Builds, in a scan worker right after it indexed a source, the feeds that show only that
    source, so their cleaning and rendering overlap the scan of other sources.  The worker's
    index records them like any build does; the parent's plan then finds them current and
    builds only what is left (feeds of several sources).  Returns what was built."""

    target: Target
    feeds: tuple[FeedSpec, ...]
    now: int
    #: The build's process: a worker whose parent is gone writes nothing more to OUT.
    parent: int = field(default_factory=os.getpid)

    def __call__(self, index: Index, source: str) -> list[FeedResult]:
        own = [spec for spec in self.feeds if spec.sources == (source,)]
        if not own:
            return []
        builder = Builder(self.target, index, parallel=False)
        state = index.feed_state()
        plans = [builder._plan(spec, self.now, state.get(spec.name)) for spec in own]
        built = []
        for plan in plans:
            if plan.current:
                continue
            if os.getppid() != self.parent:
                break  # orphaned: the build was killed, so this worker must not publish
            built.append(builder._build_feed(plan, self.now)[0])
        return built


class Builder:
    """Builds one output folder.  Keeps its index open, so a daemon can build again cheaply."""

    def __init__(
        self,
        target: Target,
        index: Index,
        *,
        parallel: bool = True,
        progress: Progress = no_progress,
        fallbacks: bool = False,
    ) -> None:
        self.target = target
        self.index = index
        #: Draws progress of long phases (the CLI passes a terminal bar).
        self.progress = progress
        #: List dumps dated by a fallback in reports (a query over the whole index).
        self.fallbacks = fallbacks
        #: Large scans fork worker processes; a daemon (which has threads) says no.
        self.parallel = parallel
        #: Processes cleaning bodies, forked once a build needs them and stopped as it ends.
        self._pool: ProcessPoolExecutor | None = None
        #: Paths that changed while they were being read in the last refresh.
        self.unsettled: set[str] = set()
        #: Whether the last refresh scanned every source (asked, or after damage to the index
        #: or a new max_bytes), or looked at the paths it was given only.
        self.scanned_all = False
        #: The dumps root the build in progress started from (see ``_same_root``).
        self._root_id: tuple[int, int] | None = None
        #: Source folders the last full scan could not read, and why: their feeds are left
        #: as they were (neither rebuilt from a partial view nor removed).
        self.unreadable: dict[str, str] = {}
        #: What each feed showed in the last build, and until when it stands (see ``_select``);
        #: emptied by a full build, whose scan workers write rows this process does not see.
        self._selections: dict[str, _Selection] = {}
        #: The rows the archived feeds showed in the last build, their bodies found good.
        self._clean: set[tuple[str, int, int]] = set()
        #: RFC 5005 links of each feed to its newest archive page, as the last build left them.
        self.histories: dict[str, History | None] = {}
        #: The rendered entries of the documents rewritten most (splice.py): a feed's, and its
        #: newest archive page's, so a new dump renders the entries it brings, not all.
        self.fragments = Slots()
        self.archiver = Archiver(
            index,
            target.out,
            target.base_url,
            self._contents,
            site=Site(target.config.title, target.config.templates),
            progress=progress,
            fragments=self.fragments,
        )
        #: What every page depends on besides its feed: the site title and the templates.
        self.pages_key = self._pages_key()

    def _follow_target(self) -> None:
        """Take up the target as it is now: a reload (SIGHUP) replaces it between builds, and
        the templates may have changed since the last build.  The archive follows it as the
        feeds do (its site title and URLs), or its pages keep the old ones."""
        cfg = self.target.config
        self.pages_key = self._pages_key()
        self.archiver.base_url = self.target.base_url
        self.archiver.site = Site(cfg.title, cfg.templates)

    def _pages_key(self) -> str:
        cfg = self.target.config
        return json.dumps([cfg.title, templates_digest(cfg.templates)], ensure_ascii=False)

    # -- scanning ---------------------------------------------------------------------------

    def refresh(
        self,
        feeds: Sequence[FeedSpec],
        paths: Iterable[str] | None = None,
        *,
        now: int | None = None,
    ) -> tuple[int, int, dict[str, FeedResult]]:
        """Bring the index up to date with the disk; returns (files seen, files parsed).

        With ``paths`` (relative to the dumps root) only those files are looked at: the daemon
        knows from file events what changed, and one event costs one stat and one read.
        Without, every source folder is scanned; given ``now``, a parallel scan also builds
        the feeds of a single source as it goes (see ``SourceFeeds``), returned by name.
        """
        cfg = self.target.config
        sources = sorted({s for spec in feeds for s in spec.sources})
        self.unsettled = set()
        self.scanned_all = paths is None
        if paths is None:
            self._selections.clear()  # the scan's worker processes write rows (Index.version)
            results = scan_all(
                self.target.dumps,
                sources,
                self.index,
                pattern=cfg.pattern,
                max_bytes=cfg.max_bytes,
                parallel=self.parallel,
                progress=self.progress,
                # Archived feeds link to their newest archive page, known only after the scan.
                after=None
                if now is None or any(spec.archive for spec in feeds)
                else SourceFeeds(self.target, tuple(feeds), now),
            )
            built = {feed.name: feed for r in results for feed in r.built}
            rows: list[DbRow] = [row for r in results for row in r.rows]
            deleted = [rel for r in results for rel in r.deleted]
            seen = sum(r.seen for r in results)
            parsed = sum(r.parsed for r in results)
            warnings = [w for r in results for w in r.warnings]
            self.unreadable = {r.source: r.failed for r in results if r.failed is not None}
        else:
            rows, deleted, seen = self._refresh_paths(set(sources), paths)
            built = {}
            parsed = len(rows)
            warnings = [w for row in rows for w in row_warnings(row)]
        for warning in warnings:
            logger.warning("%s", warning)
        self._same_root()  # before what went missing is forgotten
        started = time.perf_counter()
        self.index.apply(rows, deleted)
        logger.debug(
            "index: %d rows stored, %d forgotten in %.0f ms",
            len(rows),
            len(deleted),
            (time.perf_counter() - started) * 1000,
        )
        return seen, parsed, built

    def _refresh_paths(
        self, wanted: set[str], paths: Iterable[str]
    ) -> tuple[list[DbRow], list[str], int]:
        pattern, max_bytes = self.target.config.pattern, self.target.config.max_bytes
        rows: list[DbRow] = []
        deleted: list[str] = []
        seen = 0
        for rel in sorted(set(paths)):
            key = index_key(rel)
            known = self.index.signature(key)
            source, _, name = rel.partition("/")
            try:
                st = self._stat(rel) if source in wanted and is_dump_name(name, pattern) else None
            except OSError:
                continue  # its folder cannot be searched now: keep what the index knows
            if st is None:
                if known is not None:
                    deleted.append(key)
                continue
            seen += 1
            if known == (st.size, st.mtime_ns):
                continue
            try:
                row, _ = read_dump(self.target.dumps, st, max_bytes=max_bytes, head_only=True)
            except FileNotFoundError:
                if known is not None:
                    deleted.append(key)
                continue
            try:
                after = self._stat(rel)
            except OSError:
                after = None
            if after is None or (after.size, after.mtime_ns) != (st.size, st.mtime_ns):
                self.unsettled.add(rel)  # changed while it was read: read it again later
                continue
            rows.append(db_row(row))
        return rows, deleted, seen

    def _stat(self, rel: str) -> FileStat | None:
        return stat_dump(self.target.dumps, rel)

    # -- entries ----------------------------------------------------------------------------

    def _entries(self, spec: FeedSpec, now: int, rows: list[Row]) -> tuple[list[Row], list[Entry]]:
        """Load the cleaned content of a feed's selected dumps.

        A dump that turns out bad when read whole (a NUL byte deep in its body), or that
        changed since it was scanned, updates the index and the selection is made again.
        """
        entries: list[Entry] = []
        for attempt in range(_RESELECT):
            if attempt:
                rows = select(self.index, spec, now)
            entries, fresh = [], []
            stale = False
            for row in rows:
                content = self.index.content(row)
                if content is None:
                    loaded = load_content(self.target.dumps, row, self.target.config.max_bytes)
                    if not isinstance(loaded, Content):
                        self._forget_or_update(row, loaded)
                        stale = True
                        continue
                    content = loaded
                    fresh.append((row, content))
                entries.append(row.entry(content))
            if fresh:
                self.index.store_content(fresh)
            if not stale:
                break
        return rows, entries

    def _forget_or_update(self, row: Row, new: Row | None) -> None:
        if new is None:
            self._same_root()  # a vanished dump is deleted only if its root did not vanish
            self.index.apply([], [row.rel])
        else:
            self.index.apply([new], [])

    def _contents(self, rows: list[Row]) -> dict[str, Content]:
        """Cleaned bodies of ``rows`` by path: cached, or read and cleaned now (in parallel,
        in batches).  A row whose body cannot be had is left out; the index learns why."""
        found = self.index.contents(rows)
        missing = [row for row in rows if row.rel not in found]
        for start in range(0, len(missing), _BATCH):
            batch = missing[start : start + _BATCH]
            found.update(self._prefetch(batch, progress=no_progress))  # the archive's bar
        return found

    def _workers(self) -> ProcessPoolExecutor:
        """The build's cleaning processes (one per core, at most 8), forked on first use."""
        if self._pool is None:
            self._pool = fork_pool(_worker_count())
        return self._pool

    def _prefetch(self, rows: list[Row], progress: Progress | None = None) -> dict[str, Content]:
        """Read and clean the bodies of many dumps at once, one process per core; returns
        those that could be had (and caches them in the index)."""
        max_bytes = self.target.config.max_bytes
        jobs = [(self.target.dumps, row, max_bytes) for row in rows]
        workers = _worker_count()
        loaded: list[Content | Row | None] = []
        bar = (progress or self.progress)(len(jobs), "cleaning", "entry")
        try:
            if self.parallel and workers > 1 and len(rows) >= PARALLEL_MIN_BODIES:
                chunk = max(1, len(jobs) // (workers * 4))
                for outcome in self._workers().map(_load_job, jobs, chunksize=chunk):
                    loaded.append(outcome)
                    bar.update()
            else:
                for job in jobs:
                    loaded.append(_load_job(job))
                    bar.update()
        finally:
            bar.close()
        fresh = []
        for row, outcome in zip(rows, loaded, strict=True):
            if isinstance(outcome, Content):
                fresh.append((row, outcome))
            else:
                self._forget_or_update(row, outcome)
        if fresh:
            self.index.store_content(fresh)
        return {row.rel: content for row, content in fresh}

    # -- the build --------------------------------------------------------------------------

    def feeds(self) -> list[FeedSpec]:
        return resolve_feeds(self.target.config, self._root().sources)

    def _root(self) -> RootListing:
        return list_root(self.target.dumps, self.target.config.pattern)

    def build(self, *, now: datetime, paths: Iterable[str] | None = None) -> BuildReport:
        """One build.  Raises SourceError, before anything is written or removed, when the
        dumps folder is missing or cannot be read.  Damage to the index found on the way
        (see ``is_damage``) sets the index aside and builds again from the dumps alone, with
        one warning: the same bytes as a build with a clean index."""
        root = self._root()
        interrupted = False
        try:
            try:
                return self._build(root, now=now, paths=self._judged(paths))
            except Exception as e:
                if not is_damage(e):
                    raise
                self.index.reset(e)
            return self._build(root, now=now, paths=self._judged(None))
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            pool, self._pool = self._pool, None
            if pool is not None:
                stop_workers(pool, interrupted=interrupted)

    def _judged(self, paths: Iterable[str] | None) -> Iterable[str] | None:
        """``paths``, or None (scan every source) when the index's rows were judged with
        another max_bytes: the files it judges otherwise are read again (``judge_with``)."""
        return None if self.index.judge_with(self.target.config.max_bytes) else paths

    def _build(
        self, root: RootListing, *, now: datetime, paths: Iterable[str] | None
    ) -> BuildReport:
        from feedbridge.listing import render_opml

        started = time.perf_counter()
        self._follow_target()
        self._root_id = folder_identity(self.target.dumps)
        if self._root_id is None:
            raise SourceError(f"dumps folder {self.target.dumps} is missing; no feed was removed")
        feeds = resolve_feeds(self.target.config, root.sources)
        self._retain({spec.name for spec in feeds})
        now_s = int(now.timestamp())
        if paths is None and self.parallel and not self.index.feed_state():
            prepare(self.target.config.templates)  # a first build: every page is to be made
        scanned, parsed, built = self.refresh(feeds, paths, now=now_s)
        scan_ms = (time.perf_counter() - started) * 1000
        # What each feed shows: its plan, and where its archive begins (the rows before these).
        selected = self._settled(feeds, now_s)
        archives = self.archiver.update(
            feeds, now_s, selected, skip=self.unreadable, pages=self.pages_key, verify=paths is None
        )
        self.histories = archives.histories
        state = self.index.feed_state()
        index_state = state.pop(INDEX_PAGE, None)
        out = self.target.out
        plans = [
            self._plan(spec, now_s, state.get(spec.name), selected[spec.name]) for spec in feeds
        ]
        # A feed that shows a folder the scan could not read is left as it is.
        plans = [
            replace(plan, current=True) if self.unreadable.keys() & set(plan.spec.sources) else plan
            for plan in plans
        ]
        # Without reading the bodies; the archived feeds' were checked by ``_settled``.
        wanted = {
            row.rel: row
            for plan in plans
            if not plan.current
            for row in plan.rows
            if row.file not in self._clean
        }
        cached = self.index.cached(wanted.values())
        todo = [row for rel, row in wanted.items() if rel not in cached]
        if todo:
            self._prefetch(todo)
        results: list[FeedResult] = []
        listing: list[Listed] = []
        keep: set[str] = set()
        written: list[str] = list(archives.written)
        for plan in plans:
            result, rows = self._build_feed(plan, now_s)
            result = built.get(plan.spec.name, result) if plan.current else result
            results.append(result)
            written.extend(result.written)
            keep.update(r.rel for r in rows)
            history = self.histories.get(plan.spec.name)
            listing.append(Listed(plan.spec, plan.urls, result.entries, _headlines(rows), history))
        self._same_root()
        removed = archives.removed + self._remove_stale(state, {spec.name for spec in feeds})
        title = self.target.config.title
        if self._write_index_page(listing, index_state):
            written.append(str(out / INDEX_PAGE))
        opml = render_opml([(f.spec, f.urls, f.entries) for f in listing], title=title)
        if write_output(out / "feeds.opml", opml):
            written.append(str(out / "feeds.opml"))
        if paths is None or not all(spec.archive for spec in feeds) or archives.removed:
            # Archives keep every body they show cached: when every feed is archived, a build
            # of a few paths (the daemon's) has nothing to forget and skips this whole-table pass.
            self.index.prune_content(keep, sources=archives.sources)
        warnings = (*root.warnings, *(self.unreadable[s] for s in sorted(self.unreadable)))
        report = self._report(results, scanned, parsed, written, removed, now_s, warnings)
        logger.debug(
            "build: %d files seen, %d parsed in %.0f ms; %d feeds, %d files written in %.0f ms",
            scanned, parsed, scan_ms, len(feeds), len(written),
            (time.perf_counter() - started) * 1000 - scan_ms,
        )  # fmt: skip
        return report

    def _retain(self, feeds: set[str]) -> None:
        """Forget what was kept of feeds that are gone: a daemon outlives its feeds, and a
        source that comes and goes between rescans (which empty ``_selections``) must leave
        nothing behind."""
        self.fragments.retain(feeds)
        for name in set(self._selections) - feeds:
            del self._selections[name]

    def _settled(self, feeds: Sequence[FeedSpec], now: int) -> dict[str, list[Row]]:
        """What each feed shows, the bodies of archived feeds' rows read first: a dump found
        bad only as its body is read (a NUL deep in it) must leave a feed before its archive
        starts where the feed ends (else the entry it pushed out is in both, or in neither)."""
        for _ in range(_RESELECT):
            selected = {spec.name: self._select(spec, now) for spec in feeds}
            rows = {r.rel: r for spec in feeds if spec.archive for r in selected[spec.name]}
            known = {rel for rel, row in rows.items() if row.file in self._clean}
            unknown = [row for rel, row in rows.items() if rel not in known]
            cached = known | self.index.cached(unknown)
            missing = [row for rel, row in rows.items() if rel not in cached]
            if not missing or len(self._prefetch(missing)) == len(missing):
                # A body cleaned as the file is now stays good: the next build checks the
                # rows it has not seen (the daemon's: the new dump's).
                self._clean = {row.file for row in rows.values()}
                return selected
        return {spec.name: select(self.index, spec, now) for spec in feeds}

    def _select(self, spec: FeedSpec, now: int) -> list[Row]:
        """``select``, or what it gave the last build when it must give the same: the feed
        and its sources' rows are unchanged (by this process: a daemon's build of a few paths)
        and no dump of them has come due since.  The list is shared: read it, never change it."""
        version = self.index.version(spec.sources)
        held = self._selections.get(spec.name)
        if (
            held is not None
            and held.spec == spec
            and held.version == version
            and held.now <= now
            and (held.due is None or now < held.due)
        ):
            return held.rows
        rows = select(self.index, spec, now)
        due = self.index.next_due(spec.sources, now)
        self._selections[spec.name] = _Selection(spec, version, now, due, rows)
        return rows

    def _fingerprint(self, spec: FeedSpec, urls: FeedUrls, rows: list[Row]) -> str:
        """``fingerprint`` of a feed as it stands, kept with its selection (``_select``)."""
        history = self.histories.get(spec.name)
        held = self._selections.get(spec.name)
        if held is None or held.rows is not rows or held.spec != spec:
            return fingerprint(spec, urls, rows, self.pages_key, history)
        key = (urls, self.pages_key, history)
        if key not in held.fingerprints:
            held.fingerprints[key] = fingerprint(spec, urls, rows, self.pages_key, history)
        return held.fingerprints[key]

    def _same_root(self) -> None:
        """Raise before missing input becomes deleted feeds: the dumps root is gone, or is not
        the folder the build started from (moved away, mounted over, made again)."""
        if self._root_id is not None and folder_identity(self.target.dumps) != self._root_id:
            raise SourceError(
                f"dumps folder {self.target.dumps} is missing or was replaced during the build;"
                " no feed was removed"
            )

    def _write_index_page(
        self, listing: list[Listed], previous: tuple[str, int, list[list[object]]] | None
    ) -> bool:
        """Render ``OUT/index.html`` unless what it shows is unchanged (jinja2 is not even
        imported then); True if it was written."""
        from feedbridge.pages import index_fingerprint, render_index_page

        cfg = self.target.config
        path = self.target.out / INDEX_PAGE
        fp = index_fingerprint(listing, title=cfg.title, templates_key=self.pages_key)
        if previous and previous[0] == fp and previous[2] == _signature([path]):
            return False
        page = render_index_page(listing, title=cfg.title, templates=cfg.templates)
        written = write_output(path, page)
        self.index.store_feed(INDEX_PAGE, fp, len(listing), _signature([path]))
        return written

    def _plan(
        self,
        spec: FeedSpec,
        now: int,
        previous: tuple[str, int, list[list[object]]] | None,
        rows: list[Row] | None = None,
    ) -> FeedPlan:
        """``rows``: what ``select`` gives, if the caller has it already."""
        urls = feed_urls(spec, self.target.base_url)
        folder = self.target.out / spec.name
        paths = [folder / name for name in (*FEED_FILES, PAGE_FILE)]
        rows = select(self.index, spec, now) if rows is None else rows
        current = bool(
            previous
            and previous[0] == self._fingerprint(spec, urls, rows)
            and previous[2] == _signature(paths)
        )
        return FeedPlan(spec, urls, paths, rows, current, previous[1] if previous else 0)

    def _build_feed(self, plan: FeedPlan, now: int) -> tuple[FeedResult, list[Row]]:
        """Render a feed's three files and its page (unless current); returns what it shows."""
        spec, urls, paths = plan.spec, plan.urls, plan.paths
        if plan.current:
            return FeedResult(spec.name, plan.entries), plan.rows
        from feedbridge.pages import render_feed_page
        from feedbridge.render import render_atom, render_json, render_rss

        rows, entries = self._entries(spec, now, plan.rows)
        history = self.histories.get(spec.name)
        fp = self._fingerprint(spec, urls, rows)
        cfg = self.target.config
        trims = []
        feed_paths, page_path = paths[: len(FEED_FILES)], paths[len(FEED_FILES)]
        with Outputs() as outputs:
            renders = (render_atom, render_rss, render_json)
            for path, render in zip(feed_paths, renders, strict=True):
                memo = self.fragments.slot(spec.name, path.name)
                data, trim = fit_feed(
                    spec, entries, urls, partial(render, history=history, memo=memo)
                )
                if trim:
                    trims.append(f"{path.name}: {trim}")
                outputs.add(path, data)
            page = render_feed_page(
                spec,
                entries,
                urls,
                site_title=cfg.title,
                templates=cfg.templates,
                history=history,
            )
            outputs.add(page_path, page)
            changed = outputs.write()
        document_urls = dict(zip(feed_paths, (urls.atom, urls.rss, urls.json), strict=True))
        written = [str(path) for path in changed]
        topics = [document_urls[path] for path in changed if path in document_urls]
        if trims:
            budget, what = spec.max_feed_bytes, "; ".join(trims)
            logger.warning("feed %s: over max_feed_bytes %s: %s", spec.name, budget, what)
        self.index.store_feed(spec.name, fp, len(entries), _signature(paths))
        if written:
            logger.debug(
                "feed %s: %d entries, wrote %s",
                spec.name,
                len(entries),
                ", ".join(Path(p).name for p in written),
            )
        result = FeedResult(spec.name, len(entries), tuple(written), tuple(topics), spec.hubs)
        return result, rows

    def _remove_stale(self, state: Mapping[str, object], current: set[str]) -> list[str]:
        """Delete the files of feeds that no longer exist (only files feedbridge wrote)."""
        removed: list[str] = []
        for name in sorted(set(state) - current):
            folder = self.target.out / name
            for file in (*FEED_FILES, PAGE_FILE):
                path = folder / file
                if remove_output(path):
                    removed.append(str(path))
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never delete what feedbridge did not write
            self.index.forget_feed(name)
            logger.info("feed %s: removed (its sources are gone)", name)
        return removed

    def _report(
        self,
        results: list[FeedResult],
        scanned: int,
        parsed: int,
        written: list[str],
        removed: list[str],
        now: int,
        warnings: tuple[str, ...],
    ) -> BuildReport:
        root = self.target.dumps
        return BuildReport(
            feeds=tuple(results),
            rejected=tuple(rejection(r, root) for r in self.index.rejected()),
            future=tuple(
                Dated(
                    printable(f"{root}/{r.rel}"),
                    r.published_at,
                    Provenance(r.provenance or "epoch"),
                )
                for r in self.index.future(now)
            ),
            fallbacks=tuple(
                Dated(
                    printable(f"{root}/{r.rel}"),
                    r.published_at,
                    Provenance(r.provenance or "epoch"),
                )
                for r in (self.index.fallbacks() if self.fallbacks else ())
            ),
            scanned=scanned,
            parsed=parsed,
            written=tuple(written),
            removed=tuple(removed),
            warnings=warnings,
        )


def rejection(row: Row, root: Path) -> Rejection:
    return Rejection(printable(f"{root}/{row.rel}"), row.line, row.reason or "")


def check_tree(root: Path, config: Config) -> tuple[list[tuple[str, int, str]], list[str], int]:
    """Lint every dump under ``root`` by reading it whole; writes nothing.

    Returns (rejections as (path, line, reason), warnings, files checked): the same
    rejections as a build, by the same ``read_dump``; a folder that cannot be read, and what
    the dumps root holds besides sources, are warnings.  Raises SourceError if the root
    cannot be read.
    """
    rejections: list[tuple[str, int, str]] = []
    listing = list_root(root, config.pattern)
    warnings = list(listing.warnings)
    count = 0
    for source in listing.sources:
        try:
            rels = list_dumps(root, source, config.pattern)
            files = [st for st in (stat_dump(root, rel) for rel in rels) if st is not None]
        except OSError as e:
            folder = printable(f"{root}/{source}")
            warnings.append(f"{folder}: cannot read this folder ({e.strerror or e})")
            continue
        for st in files:
            try:
                row, _ = read_dump(root, st, max_bytes=config.max_bytes, head_only=False)
            except FileNotFoundError:
                continue
            count += 1
            if row.reason is not None:
                rejections.append((printable(f"{root}/{row.rel}"), row.line, row.reason))
            else:
                warnings.extend(row.warnings)
    return rejections, warnings, count
