"""I/O: what is on disk.  The filesystem scan of the dumps root, in parallel when it pays.

Walks the source folders, stats every dump, reads headers from the first few KiB of a file
and returns rows for ``feedbridge.index`` to store: bodies are read only for entries that make
it into a feed.  A large scan forks one worker process per core; each stores what it found
itself (see ``scan_all``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG

from feedbridge.dump import parse_dump, plain_head
from feedbridge.errors import DumpError
from feedbridge.index import (
    DbRow,
    Held,
    Index,
    Known,
    Row,
    connect,
    db_row,
    known_rows,
    row_warnings,
)
from feedbridge.model import Dump, FeedResult, Provenance
from feedbridge.progress import Progress, no_progress

#: Bytes read to parse a header; the rest of a dump is its body.
HEAD_BYTES = 2048
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC
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
AfterScan = Callable[[Index, str], list[FeedResult]]
ScanJob = tuple[Path, str, str, int, Known | tuple[str, Path], AfterScan | None]
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
        result = scan_changes(root, source, pattern, max_bytes, known_rows(index.db, source))
        index.apply(result.rows, result.deleted)
        index.held = Held()
        built = tuple(after(index, source)) if after is not None else ()
    finally:
        index.close()
    warnings = _warnings(result.rows)
    return ScanResult(source, result.seen, [], [], len(result.rows), warnings, built, index.held)


def _warnings(rows: list[DbRow]) -> tuple[str, ...]:
    return tuple(w for row in rows if row[8] is not None for w in row_warnings(row))


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
        ScanResult(s, 0, [], list(known_rows(index.db, s))) for s in counts if s not in wanted
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
                result = _scan_job((root, s, pattern, max_bytes, known_rows(index.db, s), None))
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
