"""I/O: the SQLite index of one output: what it knows of every dump, cached content, feeds.

The index is a SQLite file in the state directory (never inside OUT).  Per dump it keeps the
path, size and mtime and the header facts (id, URL, title, time, provenance) or the rejection,
as ``feedbridge.scan`` found them; a build re-reads only files that are new or whose size or
mtime changed.  Cleaned bodies are cached by (path, size, mtime), and each rendered feed's
fingerprint is kept so that an unchanged feed is not rendered again.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from feedbridge import __version__
from feedbridge.errors import CorruptIndexError
from feedbridge.model import Content, Entry, Provenance

logger = logging.getLogger(__name__)

#: Bump when the tables change; the index version also includes feedbridge's version, since
#: cached content depends on the cleaning code.
SCHEMA = 8


@dataclass(frozen=True, slots=True)
class Row:
    """What the index knows of one dump: its header facts, or why it was rejected."""

    rel: str
    source: str
    size: int
    mtime_ns: int
    id: str | None = None
    url: str | None = None
    title: str | None = None
    published: int | None = None
    provenance: str | None = None
    warnings: tuple[str, ...] = ()
    line: int = 0
    reason: str | None = None

    @property
    def published_at(self) -> datetime:
        return datetime.fromtimestamp(self.published or 0, UTC)

    @property
    def file(self) -> tuple[str, int, int]:
        """The file as the index saw it (path, size, mtime): what is cached of it is keyed so."""
        return (self.rel, self.size, self.mtime_ns)

    def entry(self, content: Content) -> Entry:
        """The feed entry of an accepted dump, with its cleaned body."""
        return Entry(
            id=self.id or "",
            url=self.url or "",
            title=self.title or "",
            published=self.published_at,
            source=self.source,
            content=content,
        )

    @property
    def shown(self) -> tuple[str, int, int, str | None, str | None, str | None, int | None]:
        """What a document shows of the dump, and the file it shows it from (its body is a
        function of the file): the part of a row a rendered document's fingerprint takes."""
        return (self.rel, self.size, self.mtime_ns, self.id, self.url, self.title, self.published)


#: Archive state (see ``feedbridge.archiver``): the pages written per feed, each entry's page
#: cost, an index of dumps by entry id (the dumps sharing an id decide which one a page
#: shows), and a log of the (source, time, id) of every dump row stored or forgotten, filled
#: by triggers (also in scan workers), so that a build knows which months of which feeds
#: changed without a full scan.  The triggers log only once some feed has an archive: a feed
#: without archive state is archived whole, so a first build (and a build without archives)
#: pays nothing for them.  The index by entry id is made by the first build with archives
#: (``ARCHIVE_ID_INDEX``): made at once over a full table it costs less than kept up row by
#: row through a first scan, and builds without archives never pay for it.
ARCHIVE_ID_INDEX = "CREATE INDEX IF NOT EXISTS archive_dumps_id ON dumps (id) WHERE id IS NOT NULL"
ARCHIVE_SCHEMA = """
    BEGIN;
    CREATE TABLE IF NOT EXISTS archive_dirty (source TEXT NOT NULL, published INTEGER, id TEXT);
    CREATE TRIGGER IF NOT EXISTS archive_dirty_store BEFORE INSERT ON dumps
    WHEN EXISTS (SELECT 1 FROM archive_feeds) BEGIN
        INSERT INTO archive_dirty SELECT source, published, id FROM dumps WHERE rel = NEW.rel;
        INSERT INTO archive_dirty VALUES (NEW.source, NEW.published, NEW.id);
    END;
    CREATE TRIGGER IF NOT EXISTS archive_dirty_forget AFTER DELETE ON dumps
    WHEN EXISTS (SELECT 1 FROM archive_feeds) BEGIN
        INSERT INTO archive_dirty VALUES (OLD.source, OLD.published, OLD.id);
        DELETE FROM archive_costs WHERE rel = OLD.rel;
    END;
    CREATE TABLE IF NOT EXISTS archive_costs (
        rel TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
        cost INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS archive_feeds (
        feed TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, seen INTEGER NOT NULL,
        boundary TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS archive_pages (
        feed TEXT NOT NULL, month TEXT NOT NULL, part INTEGER NOT NULL,
        fingerprint TEXT NOT NULL, files TEXT NOT NULL, older TEXT NOT NULL,
        newer TEXT NOT NULL, entries INTEGER NOT NULL, PRIMARY KEY (feed, month, part));
    COMMIT;
"""

#: A Row as the ``dumps`` table stores it: plain values, cheap to send between processes.
#: The last field, ``extra``, is None for the common dump (time from its epoch comment, no
#: warning); otherwise JSON ``[provenance, warnings, line, reason]``.  Rejected dumps have no
#: ``published`` time.  Few columns and few NULLs keep a bulk insert cheap.
DbRow = tuple[str, str, int, int, str | None, str | None, str | None, int | None, str | None]

_EPOCH = Provenance.EPOCH.value
#: The key in ``meta`` of the ``max_bytes`` the rows were judged with (see ``judge_with``).
_JUDGED = "max_bytes"
#: Characters of cleaned bodies an index keeps in memory (``_Recent``): the entries of the
#: documents a daemon rewrites for each new dump, with room to spare.
_RECENT_CHARS = 16_000_000


def db_row(r: Row) -> DbRow:
    plain = r.provenance == _EPOCH and not r.warnings and not r.line and r.reason is None
    extra = None if plain else json.dumps([r.provenance, list(r.warnings), r.line, r.reason])
    return (r.rel, r.source, r.size, r.mtime_ns, r.id, r.url, r.title, r.published, extra)


_PROVENANCES = frozenset(p.value for p in Provenance)


def _str_or_none(value: object) -> TypeGuard[str | None]:
    return value is None or type(value) is str


#: The times a datetime holds (years 1 to 9999), in seconds: every time a dump can have.
_MIN_TIME, _MAX_TIME = -62_135_596_800, 253_402_300_799
#: Every accepted dump's id and URL start so (case aside).
_WEB = ("http://", "https://")


def _accepted(r: DbRow, published: int) -> bool:
    """Whether a row with a time holds what the scan stores for an accepted dump: a time a
    datetime can hold, an http(s) id and URL, a title."""
    return (
        _MIN_TIME <= published <= _MAX_TIME
        and type(r[4]) is str
        and type(r[5]) is str
        and type(r[6]) is str
        and r[4][:8].lower().startswith(_WEB)
        and r[5][:8].lower().startswith(_WEB)
    )


def from_db(r: DbRow) -> Row:
    """A row of the ``dumps`` table; CorruptIndexError for anything this code never writes
    (a column of the wrong type, ``extra`` that is not its JSON, an accepted dump without
    its URL or with a time out of range)."""
    if len(r) != 9 or not (
        type(r[0]) is str
        and type(r[1]) is str
        and type(r[2]) is int
        and type(r[3]) is int
        and _str_or_none(r[4])
        and _str_or_none(r[5])
        and _str_or_none(r[6])
        and (r[7] is None or type(r[7]) is int)
    ):
        raise CorruptIndexError(f"a row of the dumps table does not decode: {r!r:.200}")
    if r[7] is not None and not _accepted(r, r[7]):
        raise CorruptIndexError(f"a row of the dumps table holds impossible values: {r!r:.200}")
    if r[8] is None:
        return Row(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _EPOCH)
    provenance, warnings, line, reason = _extra(r[8])
    return Row(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], provenance, tuple(warnings), line, reason
    )


def _extra(value: object) -> tuple[str | None, list[str], int, str | None]:
    """The ``extra`` column: JSON ``[provenance, warnings, line, reason]``."""
    try:
        if type(value) is not str:
            raise TypeError(type(value).__name__)
        provenance, warnings, line, reason = json.loads(value)
        if not (
            (provenance is None or provenance in _PROVENANCES)
            and type(warnings) is list
            and all(type(w) is str for w in warnings)
            and type(line) is int
            and _str_or_none(reason)
        ):
            raise TypeError("unexpected values")
    except (TypeError, ValueError) as e:
        raise CorruptIndexError(f"an extra column does not decode ({e}): {value!r:.200}") from e
    return provenance, warnings, line, reason


def row_warnings(r: DbRow) -> list[str]:
    """The warnings parsing this dump gave (logged once, when it is parsed)."""
    if r[8] is None:
        return []
    return _extra(r[8])[1]


#: SQLite's result codes for a file that is damaged (or not SQLite at all); disk full, I/O
#: errors, locks and read-only files are not damage and are not answered by a rebuild.
_DAMAGE = frozenset(
    (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_FORMAT, sqlite3.SQLITE_MISMATCH)
)
#: SQLITE_ERROR messages that mean the schema this code created is not there any more.
_MISSING = ("no such table", "no such column", "no such index")
#: What Python's sqlite3 says of a TEXT value that is not UTF-8.
_UNDECODABLE = "Could not decode to UTF-8 column"
#: The columns of each table, as ``_create`` makes them.
_COLUMNS = {
    "dumps": ("rel", "source", "size", "mtime_ns", "id", "url", "title", "published", "extra"),
    "content": ("rel", "size", "mtime_ns", "html", "summary", "image", "author"),
    "feeds": ("name", "fingerprint", "entries", "files"),
    "archive_dirty": ("source", "published", "id"),
    "archive_costs": ("rel", "size", "mtime_ns", "cost"),
    "archive_feeds": ("feed", "fingerprint", "seen", "boundary"),
    "archive_pages": (
        "feed", "month", "part", "fingerprint", "files", "older", "newer", "entries",
    ),
}  # fmt: skip


def pick(newest_first: Iterable[Row], limit: int) -> list[Row]:
    """The first ``limit`` rows with an entry id not seen before."""
    chosen: list[Row] = []
    seen: set[str | None] = set()
    for row in newest_first:
        if row.id in seen:
            continue
        seen.add(row.id)
        chosen.append(row)
        if len(chosen) >= limit:
            break
    return chosen


def is_damage(e: BaseException) -> bool:
    """Whether an error from the index means the index file is damaged: set it aside and
    rebuild.  Other SQLite errors (disk full, read-only, locked) are not."""
    if isinstance(e, CorruptIndexError):
        return True
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    if str(e).startswith(_UNDECODABLE):  # raised by Python's sqlite3 itself, without a code
        return True
    code = getattr(e, "sqlite_errorcode", None)
    if code is None:  # an error that crossed a process boundary without its code
        return type(e) is sqlite3.DatabaseError
    if code & 0xFF == sqlite3.SQLITE_ERROR:
        return str(e).startswith(_MISSING)
    return code & 0xFF in _DAMAGE


@dataclass(frozen=True, slots=True)
class Held:
    """Writes a scan worker leaves to its parent: cleaned contents and the states of the feeds
    it rendered.  Stored by the parent as results arrive, they never make a worker wait for
    the other worker's insert."""

    contents: list[tuple[Row, Content]] = field(default_factory=list)
    feeds: list[tuple[str, str, int, list[list[object]]]] = field(default_factory=list)


#: What the index knows of a source's files: ``rel -> (size, mtime_ns)``.
Known = dict[str, tuple[int, int]]


def _path_text(path: Path) -> str:
    """A path as text SQLite can store (a name that is not UTF-8 has its bytes as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def connect(path: str) -> sqlite3.Connection:
    """A connection to the index file.  The daemon opens it in its main thread and builds in
    its one worker thread; it never uses a connection from two threads at once."""
    db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def store(db: sqlite3.Connection, rows: Iterable[Row | DbRow], deleted: Iterable[str]) -> None:
    """Store new and changed rows and forget deleted paths, in one transaction."""
    with transaction(db):
        db.executemany(
            "INSERT OR REPLACE INTO dumps VALUES (?,?,?,?,?,?,?,?,?)",
            (r if isinstance(r, tuple) else db_row(r) for r in rows),
        )
        gone = [(rel,) for rel in deleted]
        db.executemany("DELETE FROM dumps WHERE rel = ?", gone)
        db.executemany("DELETE FROM content WHERE rel = ?", gone)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error.  IMMEDIATE takes the write lock
    up front, so a writer waits on the busy timeout instead of failing on a lock upgrade."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _insert_content(db: sqlite3.Connection, items: Iterable[tuple[Row, Content]]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO content VALUES (?,?,?,?,?,?,?)",
        ((r.rel, r.size, r.mtime_ns, c.html, c.summary, c.image, c.author) for r, c in items),
    )


def _content(r: Sequence[object]) -> Content:
    """A row of the content table (html, summary, image, author) as the Content it holds."""
    html, summary, image, author = r
    if not (
        type(html) is str and type(summary) is str and _str_or_none(image) and _str_or_none(author)
    ):
        raise CorruptIndexError(f"a row of the content table does not decode: {tuple(r)!r:.200}")
    return Content(html, summary, image, author)


class _Recent:
    """Cleaned bodies read lately, by (path, size, mtime), the least recently used dropped
    past ``capacity`` characters: the daemon renders the same feeds' entries again for each
    new dump (a feed's 50 and its newest archive page's), and a body cleaned as the file is
    now stays what it is."""

    def __init__(self, capacity: int) -> None:
        self._items: OrderedDict[tuple[str, int, int], Content] = OrderedDict()
        self._size = 0
        self._capacity = capacity

    def get(self, key: tuple[str, int, int]) -> Content | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple[str, int, int], content: Content) -> None:
        if key in self._items:
            return
        self._items[key] = content
        self._size += _chars(content)
        while self._size > self._capacity:
            _, dropped = self._items.popitem(last=False)
            self._size -= _chars(dropped)

    def clear(self) -> None:
        self._items.clear()
        self._size = 0


def _chars(content: Content) -> int:
    return len(content.html) + len(content.summary) + 200


def known_rows(db: sqlite3.Connection, source: str) -> Known:
    """What the index knows of a source's files.  A row whose ``source`` column disagrees with
    its path (damage) is left out: its file is then read again, and the row replaced."""
    # A range of the primary key: a source's paths all start with "source/" ("0" follows "/").
    sql = "SELECT rel, size, mtime_ns FROM dumps WHERE rel >= ? AND rel < ? AND source = ?"
    params = (f"{source}/", f"{source}0", source)
    return {rel: (size, mt) for rel, size, mt in db.execute(sql, params)}


class Index:
    """The persistent index of one output's dumps, cleaned contents and rendered feeds."""

    def __init__(
        self,
        path: Path | None,
        *,
        root: Path,
        out: Path,
        db: sqlite3.Connection | None = None,
        writer: contextlib.AbstractContextManager[object] | None = None,
    ) -> None:
        """Open (checking, and rebuilding if it must) the index at ``path``; in memory if None.

        A scan worker passes the connection it opened to an index its parent checked, and
        ``writer``, the lock the workers take turns with for every write.
        """
        self.path = path
        self.root = root
        self.out = out
        self.writer = writer or contextlib.nullcontext()
        #: Bodies read lately (see ``_Recent``).
        self._recent = _Recent(_RECENT_CHARS)
        #: Writes of this object to each source's rows, and resets (see ``version``).
        self._versions: dict[str, int] = {}
        self._resets = 0
        #: When set, cleaned contents and feed states are collected here instead of written.
        self.held: Held | None = None
        self.db = db or self._open()

    # -- opening, versioning, recovery -------------------------------------------------------

    def _identity(self) -> dict[str, str]:
        return {
            "schema": str(SCHEMA),
            "version": __version__,
            "root": _path_text(self.root.resolve()),
            "out": _path_text(self.out.resolve()),
        }

    def _connect(self) -> sqlite3.Connection:
        return connect(str(self.path) if self.path else ":memory:")

    def _open(self) -> sqlite3.Connection:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
            if self._compatible(db):
                return db
            db.close()
            logger.warning("index %s is from another version or output: rebuilding it", self.path)
            self._remove()
        except (sqlite3.DatabaseError, CorruptIndexError) as e:
            if not is_damage(e):
                raise
            logger.warning(
                "index %s is unreadable (%s): setting it aside and rebuilding", self.path, e
            )
            self._set_aside()
        db = self._connect()
        self._create(db)
        return db

    def _compatible(self, db: sqlite3.Connection) -> bool:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            self._create(db)
            return True
        if "meta" not in tables:
            return False
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        meta.pop(_JUDGED, None)  # a setting the rows were read with, not the index's identity
        # Probe every table: a damaged page surfaces here rather than mid-build.
        for table, columns in _COLUMNS.items():
            db.execute(f"SELECT count(*) FROM {table}").fetchone()
            found = tuple(r[1] for r in db.execute(f"PRAGMA table_info({table})"))
            if found != columns:
                raise CorruptIndexError(f"table {table} has the columns {', '.join(found)}")
        return meta == self._identity()

    def _create(self, db: sqlite3.Connection) -> None:
        db.executescript(
            """
            BEGIN;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS dumps (
                rel TEXT PRIMARY KEY, source TEXT NOT NULL, size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL, id TEXT, url TEXT, title TEXT, published INTEGER,
                extra TEXT) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS dumps_newest ON dumps (source, published DESC, rel DESC);
            CREATE INDEX IF NOT EXISTS dumps_unusual ON dumps (rel) WHERE extra IS NOT NULL;
            CREATE INDEX IF NOT EXISTS dumps_rejected ON dumps (rel)
                WHERE extra IS NOT NULL AND published IS NULL;
            CREATE TABLE IF NOT EXISTS content (
                rel TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                html TEXT NOT NULL, summary TEXT NOT NULL, image TEXT, author TEXT);
            CREATE TABLE IF NOT EXISTS feeds (
                name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, entries INTEGER NOT NULL,
                files TEXT NOT NULL);
            COMMIT;
            """
        )
        db.executescript(ARCHIVE_SCHEMA)
        db.execute("DELETE FROM meta")
        db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(self._identity().items()))

    def _remove(self) -> None:
        if self.path:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)

    def _set_aside(self) -> None:
        if not self.path:
            return
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        with contextlib.suppress(OSError):
            self.path.replace(aside)
        for suffix in ("-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        self.db.close()

    def reset(self, why: BaseException) -> None:
        """Damage found while in use (see ``is_damage``): set the file aside as at open time
        and start an empty index, so that the next build is a cold one."""
        logger.warning(
            "index %s is damaged (%s): setting it aside and rebuilding from the dumps",
            self.path or ":memory:",
            " ".join(str(why).split())[:200],
        )
        self._resets += 1
        self._recent.clear()
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
        self._set_aside()
        self.db = self._connect()
        self._create(self.db)

    # -- dumps ------------------------------------------------------------------------------

    def source_counts(self) -> dict[str, int]:
        sql = "SELECT source, count(*) FROM dumps GROUP BY source"
        counts: dict[str, int] = dict(self.db.execute(sql).fetchall())
        if not all(type(s) is str for s in counts):
            raise CorruptIndexError("a source in the dumps table is not text")
        return counts

    def signature(self, rel: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of one dump as the index knows it."""
        r = self.db.execute("SELECT size, mtime_ns FROM dumps WHERE rel = ?", (rel,)).fetchone()
        return (r[0], r[1]) if r else None

    def apply(self, rows: Iterable[Row | DbRow], deleted: Iterable[str]) -> None:
        """Store new and changed rows and forget deleted paths, in one transaction."""
        rows, deleted = list(rows), list(deleted)
        with self.writer:
            store(self.db, rows, deleted)
        touched = {r[1] if isinstance(r, tuple) else r.source for r in rows}
        touched.update(rel.partition("/")[0] for rel in deleted)  # "source/name"
        for source in touched:
            self._versions[source] = self._versions.get(source, 0) + 1

    def judge_with(self, max_bytes: int) -> bool:
        """Make the rows ones judged with ``max_bytes``: a scan reads again only files whose
        size or mtime changed, but a file's verdict (too large, or not) also follows
        ``max_bytes``, which a reload may change.  The rows of files whose verdict may differ
        (larger than the smaller limit; every rejected one when the old limit is unknown) are
        forgotten, for the next full scan to read them as new.  True if any was."""
        found = self.db.execute("SELECT value FROM meta WHERE key = ?", (_JUDGED,)).fetchone()
        if found is not None and found[0] == str(max_bytes):
            return False
        old = int(found[0]) if found is not None and str(found[0]).isdigit() else None
        where = "size > ?" if old is not None else "size > ? OR published IS NULL"
        params = (min(old, max_bytes),) if old is not None else (max_bytes,)
        gone = [r[0] for r in self.db.execute(f"SELECT rel FROM dumps WHERE {where}", params)]
        self.apply([], gone)  # then the limit: killed in between, they are gone twice
        with self.writer:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_JUDGED, str(max_bytes)))
        return bool(gone)

    def version(self, sources: Iterable[str]) -> tuple[int, ...]:
        """Changes this object made to the rows of ``sources`` (and resets of the index): equal
        versions, same rows.  Only this process's writes count: a scan's worker processes
        write rows too, so a full build does not go by it."""
        return (self._resets, *(self._versions.get(s, 0) for s in sorted(set(sources))))

    def next_due(self, sources: Iterable[str], now: int) -> int | None:
        """The time of the first dump of ``sources`` dated after ``now`` (None: none is)."""
        sql = "SELECT min(published) FROM dumps WHERE source = ? AND published > ?"
        due = [self.db.execute(sql, (s, now)).fetchone()[0] for s in sorted(set(sources))]
        return min((d for d in due if d is not None), default=None)

    def _rows(self, sql: str, params: Iterable[object] = ()) -> Iterator[Row]:
        for r in self.db.execute(sql, tuple(params)):
            yield from_db(r)

    def sources(self) -> list[str]:
        """Every source the index knows, by a skip-scan of ``dumps_newest``."""
        sql = """
            WITH RECURSIVE s(source) AS (
                SELECT min(source) FROM dumps
                UNION ALL
                SELECT (SELECT min(source) FROM dumps WHERE source > s.source) FROM s
                WHERE s.source IS NOT NULL)
            SELECT source FROM s WHERE source IS NOT NULL"""
        sources = [r[0] for r in self.db.execute(sql)]
        if not all(type(s) is str for s in sources):
            raise CorruptIndexError("a source in the dumps table is not text")
        return sources

    def newest(self, sources: Iterable[str], now: int) -> Iterator[Row]:
        """Accepted dumps of these sources, newest first (then by path), none after ``now``.

        One walk of ``dumps_newest`` per source, merged: a feed reads only as many rows as it
        shows."""
        sql = (
            "SELECT * FROM dumps WHERE source = ? AND published <= ?"
            " ORDER BY published DESC, rel DESC"
        )
        walks = [self._rows(sql, (source, now)) for source in sorted(set(sources))]
        if len(walks) == 1:
            return walks[0]
        return heapq.merge(*walks, key=_newest_key, reverse=True)

    def count_shown(self, sources: Iterable[str], now: int) -> int:
        """How many accepted dumps of these sources are dated up to ``now``."""
        sql = "SELECT count(*) FROM dumps WHERE source = ? AND published <= ?"
        return sum(self.db.execute(sql, (s, now)).fetchone()[0] for s in sorted(set(sources)))

    def future(self, now: int) -> list[Row]:
        sql = "SELECT * FROM dumps WHERE source = ? AND published > ? ORDER BY published, rel"
        walks = [self._rows(sql, (source, now)) for source in self.sources()]
        return list(heapq.merge(*walks, key=_newest_key))

    def rejected(self) -> list[Row]:
        # The partial index dumps_rejected holds exactly these rows: a build (the daemon's, for
        # every file event) lists them without visiting the dumps whose time was only unusual.
        return list(
            self._rows(
                "SELECT * FROM dumps WHERE extra IS NOT NULL AND published IS NULL ORDER BY rel"
            )
        )

    def fallbacks(self) -> list[Row]:
        rows = self._rows(
            "SELECT * FROM dumps WHERE extra IS NOT NULL AND published IS NOT NULL ORDER BY rel"
        )
        return [r for r in rows if r.provenance != _EPOCH]

    def count(self) -> int:
        n: int = self.db.execute("SELECT count(*) FROM dumps").fetchone()[0]
        return n

    # -- cleaned content --------------------------------------------------------------------

    def content(self, row: Row) -> Content | None:
        """A dump's cleaned body, if it was cleaned as the file is now (same size and mtime)."""
        if self.held:
            for held, content in self.held.contents:
                if held.file == row.file:
                    return content
        recent = self._recent.get(row.file)
        if recent is not None:
            return recent
        r = self.db.execute(
            "SELECT html, summary, image, author FROM content"
            " WHERE rel = ? AND size = ? AND mtime_ns = ?",
            row.file,
        ).fetchone()
        if r is None:
            return None
        content = _content(r)
        self._recent.put(row.file, content)
        return content

    def current_rows(
        self, select: str, wanted: Mapping[str, tuple[int, int]]
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of ``select`` (``SELECT rel, size, mtime_ns, ... FROM table``, keyed by
        ``rel``) for the paths in ``wanted`` whose size and mtime still match: what was cached
        of a file as it is now.  In chunks of 500, below SQLite's limit on parameters."""
        keys = list(wanted)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            sql = f"{select} WHERE rel IN ({','.join('?' * len(chunk))})"
            for row in self.db.execute(sql, chunk):
                if wanted.get(row[0]) == (row[1], row[2]):
                    yield row

    def contents(self, rows: Iterable[Row]) -> dict[str, Content]:
        """Cleaned bodies of many dumps at once, by path (those cleaned as the file is now)."""
        found: dict[str, Content] = {}
        wanted: dict[str, tuple[int, int]] = {}
        for row in rows:
            recent = self._recent.get(row.file)
            if recent is not None:
                found[row.rel] = recent
            else:
                wanted[row.rel] = (row.size, row.mtime_ns)
        sql = "SELECT rel, size, mtime_ns, html, summary, image, author FROM content"
        for rel, size, mtime_ns, *fields in self.current_rows(sql, wanted):
            found[rel] = _content(fields)
            self._recent.put((rel, size, mtime_ns), found[rel])
        return found

    def cached(self, rows: Iterable[Row]) -> set[str]:
        """Paths of ``rows`` whose cleaned body is cached as the file is now (bodies unread)."""
        wanted = {r.rel: (r.size, r.mtime_ns) for r in rows}
        found = {
            held.rel
            for held, _ in (self.held.contents if self.held else ())
            if wanted.get(held.rel) == (held.size, held.mtime_ns)
        }
        sql = "SELECT rel, size, mtime_ns FROM content"
        found.update(row[0] for row in self.current_rows(sql, wanted))
        return found

    def store_content(self, items: Iterable[tuple[Row, Content]]) -> None:
        if self.held is not None:
            self.held.contents.extend(items)
            return
        with self.writer, transaction(self.db):
            _insert_content(self.db, items)

    def store_held(self, held: Held) -> None:
        """Write what a scan worker held back, in one transaction."""
        with self.writer, transaction(self.db):
            _insert_content(self.db, held.contents)
            for feed in held.feeds:
                self._insert_feed(*feed)

    def prune_content(self, keep: Iterable[str], *, sources: Iterable[str] = ()) -> None:
        """Forget cleaned content no feed shows any more: neither in ``keep`` nor of a dump of
        ``sources`` (the sources of archived feeds, whose every body is published)."""
        archived = sorted(set(sources))
        with self.writer, transaction(self.db):
            self.db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS keep_sources (source TEXT PRIMARY KEY)"
            )
            self.db.execute("DELETE FROM keep_sources")
            self.db.executemany("INSERT INTO keep_sources VALUES (?)", ((s,) for s in archived))
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (rel TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM keep")
            self.db.executemany("INSERT OR IGNORE INTO keep VALUES (?)", ((k,) for k in keep))
            self.db.execute(
                "DELETE FROM content WHERE rel NOT IN (SELECT rel FROM keep)"
                " AND substr(rel, 1, instr(rel, '/') - 1) NOT IN (SELECT source FROM keep_sources)"
            )

    # -- rendered feeds ---------------------------------------------------------------------

    def feed_state(self) -> dict[str, tuple[str, int, list[list[object]]]]:
        state: dict[str, tuple[str, int, list[list[object]]]] = {}
        for name, fp, n, files in self.db.execute(
            "SELECT name, fingerprint, entries, files FROM feeds"
        ):
            try:
                signature = json.loads(files)
                if not (
                    type(name) is str
                    and type(fp) is str
                    and type(n) is int
                    and type(signature) is list
                    and all(type(f) is list for f in signature)
                ):
                    raise TypeError("unexpected values")
            except (TypeError, ValueError) as e:
                raise CorruptIndexError(f"a row of the feeds table does not decode ({e})") from e
            state[name] = (fp, n, signature)
        return state

    def store_feed(
        self, name: str, fingerprint: str, entries: int, files: list[list[object]]
    ) -> None:
        if self.held is not None:
            self.held.feeds.append((name, fingerprint, entries, files))
            return
        with self.writer:
            self._insert_feed(name, fingerprint, entries, files)

    def _insert_feed(
        self, name: str, fingerprint: str, entries: int, files: list[list[object]]
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO feeds VALUES (?,?,?,?)",
            (name, fingerprint, entries, json.dumps(files)),
        )

    def forget_feed(self, name: str) -> None:
        with self.writer:
            self.db.execute("DELETE FROM feeds WHERE name = ?", (name,))


def _newest_key(row: Row) -> tuple[int, str]:
    return (row.published or 0, row.rel)
