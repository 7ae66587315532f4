"""I/O: what is on disk, and what changed since the last build.

The index is a SQLite file in the state directory (never inside OUT).  Per dump it keeps the
path, size and mtime and the header facts (id, URL, title, time, provenance) or the rejection;
a build re-reads only files that are new or whose size or mtime changed.  Headers are read from
the first few KiB of a file: bodies are read only for entries that make it into a feed, and
their cleaned form is cached by (path, size, mtime).
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import heapq
import json
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG

from feedbridge import __version__
from feedbridge.dump import parse_dump, plain_head
from feedbridge.errors import DumpError
from feedbridge.model import Content, Dump, FeedResult, Provenance, Rejection
from feedbridge.progress import Progress, no_progress

logger = logging.getLogger(__name__)

#: Bytes read to parse a header; the rest of a dump is its body.
HEAD_BYTES = 2048
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC
#: Bump when the tables change; the index version also includes feedbridge's version, since
#: cached content depends on the cleaning code.
SCHEMA = 4
_IGNORED_SUFFIXES = (".swp", ".tmp", ".part", "~")


@functools.lru_cache(maxsize=16)
def dump_name_filter(pattern: str) -> Callable[[str], bool]:
    """Spec section 6: hidden, editor and partial files are never dumps; others must match."""
    match = re.compile(fnmatch.translate(pattern)).match

    def is_dump(name: str) -> bool:
        return not (name.startswith(".") or name.endswith(_IGNORED_SUFFIXES)) and bool(match(name))

    return is_dump


def is_dump_name(name: str, pattern: str) -> bool:
    return dump_name_filter(pattern)(name)


@dataclass(frozen=True, slots=True)
class FileStat:
    rel: str
    source: str
    size: int
    mtime_ns: int


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


def list_sources(root: Path) -> list[str]:
    """Immediate, visible subfolders of the dumps root."""
    try:
        with os.scandir(root) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except FileNotFoundError:
        return []


def dump_entries(folder: Path | int, pattern: str) -> Iterator[tuple[str, os.stat_result]]:
    """(name, stat) of every dump in a source folder (a path, or an open descriptor, which
    makes each stat relative to it); nothing if the folder is gone."""
    is_dump = dump_name_filter(pattern)
    try:
        it = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    with it:
        for entry in it:
            name = entry.name
            if not is_dump(name):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            if S_ISREG(st.st_mode):
                yield name, st


def scan_source(root: Path, source: str, pattern: str) -> Iterator[FileStat]:
    for name, st in dump_entries(root / source, pattern):
        yield FileStat(f"{source}/{name}", source, st.st_size, st.st_mtime_ns)


def stat_dump(root: Path, rel: str) -> FileStat | None:
    """A dump's FileStat as it is on disk now; None if it is gone or not a file."""
    try:
        st = os.stat(f"{root}/{rel}")
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not S_ISREG(st.st_mode):
        return None
    return FileStat(rel, rel.partition("/")[0], st.st_size, st.st_mtime_ns)


def scan(root: Path, sources: Iterable[str], pattern: str) -> dict[str, FileStat]:
    return {st.rel: st for source in sources for st in scan_source(root, source, pattern)}


def mtime_datetime(mtime_ns: int) -> datetime:
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000, UTC)


def _row(st: FileStat, dump: Dump) -> Row:
    return Row(
        rel=st.rel,
        source=st.source,
        size=st.size,
        mtime_ns=st.mtime_ns,
        id=dump.id,
        url=dump.url,
        title=dump.title,
        published=int(dump.published.timestamp()),
        provenance=dump.provenance.value,
        warnings=dump.warnings,
    )


def _rejected(st: FileStat, line: int, reason: str) -> Row:
    return Row(
        rel=st.rel, source=st.source, size=st.size, mtime_ns=st.mtime_ns, line=line, reason=reason
    )


def _read(path: str, limit: int, dir_fd: int | None = None) -> bytes:
    """Up to ``limit`` bytes of a file (plain os calls: a scan reads thousands of heads);
    with ``dir_fd``, ``path`` is relative to that open folder."""
    fd = os.open(path, _OPEN_FLAGS, dir_fd=dir_fd)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_dump(
    root: Path, st: FileStat, *, max_bytes: int, head_only: bool
) -> tuple[Row, Dump | None]:
    """Read and parse one file.  Returns its index row and, when read whole, the full Dump.

    Never raises for a bad dump: a rejection is a Row with a reason.  A file that vanished
    raises FileNotFoundError (the caller treats it as deleted).
    """
    display = f"{root}/{st.rel}"
    if st.size > max_bytes:
        return _rejected(st, 1, f"file is {st.size} bytes, over the limit of {max_bytes}"), None
    mtime = mtime_datetime(st.mtime_ns)
    limit = HEAD_BYTES if head_only else min(max_bytes, max(st.size, HEAD_BYTES))
    try:
        data = _read(display, limit + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(display) from None
    except OSError as e:
        return _rejected(st, 1, f"cannot read: {e.strerror or e}"), None
    if head_only:
        complete = len(data) <= HEAD_BYTES
        data = data[:HEAD_BYTES]
    elif len(data) > limit:
        if limit >= max_bytes:
            return _rejected(st, 1, f"file is over the limit of {max_bytes} bytes"), None
        # The file grew since it was listed: read it as it is now.
        now = stat_dump(root, st.rel)
        if now is None:
            raise FileNotFoundError(display)
        return read_dump(root, now, max_bytes=max_bytes, head_only=False)
    else:
        complete = True
    try:
        dump = parse_dump(data, path=display, mtime=mtime, complete=complete)
        if not complete and dump.provenance is Provenance.MTIME:
            return read_dump(root, st, max_bytes=max_bytes, head_only=False)
    except DumpError as e:
        if not complete:
            # The head may have cut a long title line: judge the whole file.
            return read_dump(root, st, max_bytes=max_bytes, head_only=False)
        return _rejected(st, e.line, e.reason), None
    return _row(st, dump), dump if complete else None


# -- scanning, in parallel when it pays -----------------------------------------------------

#: Below this many files a scan runs in this process: forking costs more than it saves.
PARALLEL_MIN_FILES = 2000


#: A Row as the ``dumps`` table stores it: plain values, cheap to send between processes.
#: The last field, ``extra``, is None for the common dump (time from its epoch comment, no
#: warning); otherwise JSON ``[provenance, warnings, line, reason]``.  Rejected dumps have no
#: ``published`` time.  Few columns and few NULLs keep a bulk insert cheap.
DbRow = tuple[str, str, int, int, str | None, str | None, str | None, int | None, str | None]

_EPOCH = Provenance.EPOCH.value


def db_row(r: Row) -> DbRow:
    plain = r.provenance == _EPOCH and not r.warnings and not r.line and r.reason is None
    extra = None if plain else json.dumps([r.provenance, list(r.warnings), r.line, r.reason])
    return (r.rel, r.source, r.size, r.mtime_ns, r.id, r.url, r.title, r.published, extra)


def from_db(r: DbRow) -> Row:
    if r[8] is None:
        return Row(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _EPOCH)
    provenance, warnings, line, reason = json.loads(r[8])
    return Row(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], provenance, tuple(warnings), line, reason
    )


def row_warnings(r: DbRow) -> list[str]:
    """The warnings parsing this dump gave (logged once, when it is parsed)."""
    if r[8] is None:
        return []
    warnings: list[str] = json.loads(r[8])[1]
    return warnings


@dataclass(frozen=True, slots=True)
class Held:
    """Writes a scan worker leaves to its parent: cleaned contents and the states of the feeds
    it rendered.  Stored by the parent as results arrive, they never make a worker wait for
    the other worker's insert."""

    contents: list[tuple[Row, Content]] = field(default_factory=list)
    feeds: list[tuple[str, str, int, list[list[object]]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One source folder scanned.  ``rows`` and ``deleted`` are what the caller still has to
    store; a worker process stores its own and reports only how many it ``parsed`` and the
    ``warnings`` to log."""

    source: str
    seen: int
    rows: list[DbRow]
    deleted: list[str]
    parsed: int = 0
    warnings: tuple[str, ...] = ()
    built: tuple[FeedResult, ...] = ()
    held: Held | None = None


Known = dict[str, tuple[int, int]]


def _head_facts(data: bytes) -> tuple[str, str, str, int] | None:
    """``plain_head`` of up to ``HEAD_BYTES + 1`` bytes read from a file's start (one byte
    more tells whether the head is the whole file); None for nothing read."""
    return plain_head(data[:HEAD_BYTES], complete=len(data) <= HEAD_BYTES) if data else None


def _plain_facts(folder: int, name: str) -> tuple[str, str, str, int] | None:
    """``plain_head`` of a file in an open folder; None if it cannot be read."""
    try:
        return _head_facts(_read(name, HEAD_BYTES + 1, dir_fd=folder))
    except OSError:
        return None


def _head_of_new(folder: int, name: str, max_bytes: int) -> tuple[os.stat_result, bytes] | None:
    """A file the index has never seen: its stat and its head (empty if it is too large to be
    a dump, or could not be read: ``read_dump`` then says why).  None if it is gone or not a
    regular file.  Opening first and asking the descriptor saves a path lookup."""
    try:
        fd = os.open(name, _OPEN_FLAGS | os.O_NONBLOCK, dir_fd=folder)
    except FileNotFoundError:
        return None
    except OSError:  # unreadable, a socket, ...: the stat decides whether it is a dump
        try:
            st = os.stat(name, dir_fd=folder)
        except OSError:
            return None
        return (st, b"") if S_ISREG(st.st_mode) else None
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode):
            return None
        return st, os.read(fd, HEAD_BYTES + 1) if st.st_size <= max_bytes else b""
    except OSError:
        return st, b""
    finally:
        os.close(fd)


def _scan_new(
    folder: int, source: str, pattern: str, max_bytes: int
) -> tuple[list[DbRow], list[FileStat]]:
    """Rows for a folder the index knows nothing of (a cold build), and the files whose
    header is not in the common form."""
    rows: list[DbRow] = []
    unusual: list[FileStat] = []
    prefix = f"{source}/"
    is_dump = dump_name_filter(pattern)
    for name in os.listdir(folder):
        if not is_dump(name):
            continue
        found = _head_of_new(folder, name, max_bytes)
        if found is None:
            continue
        st, data = found
        rel = prefix + name
        facts = _head_facts(data)
        if facts is None:
            unusual.append(FileStat(rel, source, st.st_size, st.st_mtime_ns))
            continue
        dump_id, url, title, published = facts
        rows.append((rel, source, st.st_size, st.st_mtime_ns, dump_id, url, title, published, None))
    return rows, unusual


def _scan_known(
    folder: int, source: str, pattern: str, max_bytes: int, known: Known
) -> tuple[list[DbRow], list[FileStat], set[str]]:
    """Rows for the new and changed files of a folder, the files whose header is not in the
    common form, and every dump present."""
    rows: list[DbRow] = []
    unusual: list[FileStat] = []
    present: set[str] = set()
    prefix = f"{source}/"
    for name, st in dump_entries(folder, pattern):
        rel = prefix + name
        present.add(rel)
        size, mtime_ns = st.st_size, st.st_mtime_ns
        if known.get(rel) == (size, mtime_ns):
            continue
        facts = _plain_facts(folder, name) if size <= max_bytes else None
        if facts is None:
            unusual.append(FileStat(rel, source, size, mtime_ns))
            continue
        dump_id, url, title, published = facts
        rows.append((rel, source, size, mtime_ns, dump_id, url, title, published, None))
    return rows, unusual, present


def scan_changes(root: Path, source: str, pattern: str, max_bytes: int, known: Known) -> ScanResult:
    """One source folder against what the index knows of it (``rel -> (size, mtime_ns)``):
    new and changed files parsed, deleted ones named.

    The hot loops of a build (100,000 files): files are opened relative to the folder's
    descriptor, and a header in the common form (``plain_head``) becomes a row directly; any
    other file goes through ``read_dump``.
    """
    try:
        folder = os.open(f"{root}/{source}", _OPEN_FLAGS | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return ScanResult(source, 0, [], list(known))
    try:
        if known:
            rows, unusual, present = _scan_known(folder, source, pattern, max_bytes, known)
            seen = len(present)
        else:
            rows, unusual = _scan_new(folder, source, pattern, max_bytes)
            present, seen = set(), len(rows) + len(unusual)
    finally:
        os.close(folder)
    for fst in unusual:
        try:
            row, _ = read_dump(root, fst, max_bytes=max_bytes, head_only=True)
        except FileNotFoundError:
            seen -= 1
            continue
        rows.append(db_row(row))
    return ScanResult(source, seen, rows, [rel for rel in known if rel not in present])


#: Runs in a scan worker once its source is indexed, with the worker's own Index: the build
#: uses it to build the feeds that show only that source while other sources are still being
#: scanned.  The feeds it built travel back in the ScanResult.
AfterScan = Callable[["Index", str], list[FeedResult]]
ScanJob = tuple[Path, str, str, int, "Known | tuple[str, Path]", "AfterScan | None"]
#: Scan workers take turns to write the index.  SQLite's own busy wait sleeps in steps of
#: up to 100 ms; this lock (inherited through fork) wakes the next writer at once.
_WRITER: contextlib.AbstractContextManager[object] = contextlib.nullcontext()


def _init_worker(lock: contextlib.AbstractContextManager[object]) -> None:
    global _WRITER  # noqa: PLW0603 - per-process state of a pool worker
    _WRITER = lock


def _scan_job(job: ScanJob) -> ScanResult:
    root, source, pattern, max_bytes, known, after = job
    if isinstance(known, dict):
        result = scan_changes(root, source, pattern, max_bytes, known)
        return replace(result, parsed=len(result.rows), warnings=_warnings(result.rows))
    # In a worker process: a connection of its own (the parent's must not be used after fork)
    # to read what the index knows of this source and to store what changed, so rows need not
    # travel back to the parent, and one worker's insert overlaps the other's scan.
    db_path, out = known
    index = Index(Path(db_path), root=root, out=out, db=connect(db_path), writer=_WRITER)
    try:
        result = scan_changes(root, source, pattern, max_bytes, _known_rows(index.db, source))
        index.apply(result.rows, result.deleted)
        index.held = Held()
        built = tuple(after(index, source)) if after is not None else ()
    finally:
        index.close()
    warnings = _warnings(result.rows)
    return ScanResult(source, result.seen, [], [], len(result.rows), warnings, built, index.held)


def _warnings(rows: list[DbRow]) -> tuple[str, ...]:
    return tuple(w for row in rows if row[8] is not None for w in row_warnings(row))


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


def _known_rows(db: sqlite3.Connection, source: str) -> Known:
    # A range of the primary key: a source's paths all start with "source/" ("0" follows "/").
    sql = "SELECT rel, size, mtime_ns FROM dumps WHERE rel >= ? AND rel < ?"
    return {rel: (size, mt) for rel, size, mt in db.execute(sql, (f"{source}/", f"{source}0"))}


def scan_all(
    root: Path,
    sources: list[str],
    index: Index,
    *,
    pattern: str,
    max_bytes: int,
    parallel: bool,
    progress: Progress = no_progress,
    after: AfterScan | None = None,
) -> list[ScanResult]:
    """Scan every source folder against the index; with ``parallel``, a large scan uses one
    process per core, each loading what the index knows of its sources itself, storing what
    it found and then running ``after``."""
    counts = index.source_counts()
    wanted = set(sources)
    results = [
        ScanResult(s, 0, [], list(_known_rows(index.db, s))) for s in counts if s not in wanted
    ]
    workers = min(os.cpu_count() or 1, len(sources))
    expected = sum(counts.get(s, 0) for s in sources) or _listed_files(root, sources)
    bar = progress(expected or None, "scanning", "file")
    try:
        if parallel and index.path and workers > 1 and expected >= PARALLEL_MIN_FILES:
            import multiprocessing

            known = (str(index.path), index.out)
            jobs: list[ScanJob] = [(root, s, pattern, max_bytes, known, after) for s in sources]
            context = multiprocessing.get_context("fork")
            lock = context.Lock()
            with context.Pool(workers, _init_worker, (lock,)) as pool:
                for result in pool.imap_unordered(_scan_job, jobs):
                    if result.held:
                        with lock:
                            index.store_held(result.held)
                    results.append(result)
                    bar.update(result.seen)
        else:
            for s in sources:
                result = _scan_job((root, s, pattern, max_bytes, _known_rows(index.db, s), None))
                results.append(result)
                bar.update(result.seen)
    finally:
        bar.close()
    return results


def _listed_files(root: Path, sources: list[str]) -> int:
    """Roughly how many files a cold scan will meet (stops counting once it is enough)."""
    total = 0
    for source in sources:
        try:
            total += len(os.listdir(root / source))
        except OSError:
            continue
        if total >= PARALLEL_MIN_FILES:
            break
    return total


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
        #: When set, cleaned contents and feed states are collected here instead of written.
        self.held: Held | None = None
        self.db = db or self._open()

    # -- opening, versioning, recovery -------------------------------------------------------

    def _identity(self) -> dict[str, str]:
        return {
            "schema": str(SCHEMA),
            "version": __version__,
            "root": str(self.root.resolve()),
            "out": str(self.out.resolve()),
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
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):
                raise  # full, read-only: not damage
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
        # Probe every table: a damaged page surfaces here rather than mid-build.
        for table in ("dumps", "content", "feeds"):
            db.execute(f"SELECT count(*) FROM {table}").fetchone()
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
            CREATE TABLE IF NOT EXISTS content (
                rel TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                html TEXT NOT NULL, summary TEXT NOT NULL, image TEXT, author TEXT);
            CREATE TABLE IF NOT EXISTS feeds (
                name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, entries INTEGER NOT NULL,
                files TEXT NOT NULL);
            COMMIT;
            """
        )
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

    # -- dumps ------------------------------------------------------------------------------

    def source_counts(self) -> dict[str, int]:
        sql = "SELECT source, count(*) FROM dumps GROUP BY source"
        counts: dict[str, int] = dict(self.db.execute(sql).fetchall())
        return counts

    def signature(self, rel: str) -> tuple[int, int] | None:
        """(size, mtime_ns) of one dump as the index knows it."""
        r = self.db.execute("SELECT size, mtime_ns FROM dumps WHERE rel = ?", (rel,)).fetchone()
        return (r[0], r[1]) if r else None

    def apply(self, rows: Iterable[Row | DbRow], deleted: Iterable[str]) -> None:
        """Store new and changed rows and forget deleted paths, in one transaction."""
        with self.writer:
            store(self.db, rows, deleted)

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
        return [r[0] for r in self.db.execute(sql)]

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

    def future(self, now: int) -> list[Row]:
        sql = "SELECT * FROM dumps WHERE source = ? AND published > ? ORDER BY published, rel"
        walks = [self._rows(sql, (source, now)) for source in self.sources()]
        return list(heapq.merge(*walks, key=_newest_key))

    def rejected(self) -> list[Row]:
        # "extra IS NOT NULL" lets SQLite use the small partial index dumps_unusual.
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
                if (held.rel, held.size, held.mtime_ns) == (row.rel, row.size, row.mtime_ns):
                    return content
        r = self.db.execute(
            "SELECT html, summary, image, author FROM content"
            " WHERE rel = ? AND size = ? AND mtime_ns = ?",
            (row.rel, row.size, row.mtime_ns),
        ).fetchone()
        return Content(r[0], r[1], r[2], r[3]) if r else None

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

    def prune_content(self, keep: Iterable[str]) -> None:
        """Forget cleaned content no feed shows any more."""
        with self.writer, transaction(self.db):
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS keep (rel TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM keep")
            self.db.executemany("INSERT OR IGNORE INTO keep VALUES (?)", ((k,) for k in keep))
            self.db.execute("DELETE FROM content WHERE rel NOT IN (SELECT rel FROM keep)")

    # -- rendered feeds ---------------------------------------------------------------------

    def feed_state(self) -> dict[str, tuple[str, int, list[list[object]]]]:
        return {
            name: (fp, n, json.loads(files))
            for name, fp, n, files in self.db.execute(
                "SELECT name, fingerprint, entries, files FROM feeds"
            )
        }

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


def rejection(row: Row, root: Path) -> Rejection:
    return Rejection(str(root / row.rel), row.line, row.reason or "")
