"""I/O: what is on disk.  The filesystem scan of the dumps root, in parallel when it pays.

Walks the source folders, stats every dump, reads headers from the first few KiB of a file
and returns rows for ``feedbridge.index`` to store: bodies are read only for entries that make
it into a feed.  A large scan forks one worker process per core; each stores what it found
itself (see ``scan_all``).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISLNK, S_ISREG, S_ISSOCK
from typing import Any

from feedbridge.dump import parse_dump, plain_head
from feedbridge.errors import CorruptIndexError, DumpError, SourceError
from feedbridge.index import (
    DbRow,
    Held,
    Index,
    Known,
    Row,
    connect,
    db_row,
    is_damage,
    known_rows,
    row_warnings,
)
from feedbridge.model import Dump, FeedResult, Provenance
from feedbridge.progress import Progress, no_progress
from feedbridge.workers import fork_pool
from feedbridge.workers import stop as stop_workers

#: Bytes read to parse a header; the rest of a dump is its body.
HEAD_BYTES = 2048
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
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


# -- names: what the index stores, what messages show -----------------------------------------


def is_utf8(name: str) -> bool:
    """Whether a name from the file system is valid UTF-8 (Python decodes other bytes to
    lone surrogates, which SQLite, JSON and XML cannot hold)."""
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def index_key(rel: str) -> str:
    """The path the index stores for a dump: ``rel`` itself, or for a name that is not UTF-8,
    its bytes with the undecodable ones written ``\\xNN`` (such a file is only ever a
    rejection, so the key never has to be opened)."""
    if is_utf8(rel):
        return rel
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(path: str) -> str:
    """A path for a one-line message: valid UTF-8, control characters and line breaks escaped
    (a file may be named ``a\\nb.md``)."""
    if not is_utf8(path):
        path = os.fsencode(path).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], path)


def one_line(text: str, limit: int = 300) -> str:
    """An error text as a short single line (exception messages may quote input)."""
    text = " ".join(printable(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _strerror(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return one_line(f"{type(e).__name__}: {e}")


# -- the dumps root --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootListing:
    """What the dumps root holds: its source folders, and what is worth a warning."""

    sources: list[str]
    warnings: list[str]


#: (st_dev, st_ino) of a folder: a root deleted and made again, or mounted over, changes it.
Identity = tuple[int, int]


def folder_identity(path: Path) -> Identity | None:
    """The folder ``path`` names now; None if it is missing or not a folder."""
    try:
        st = path.stat()
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if S_ISDIR(st.st_mode) else None


def list_root(root: Path, pattern: str) -> RootListing:
    """The sources of the dumps root: its visible subfolders (a symbolic link to a folder is
    one too, wherever it points).

    Raises SourceError when the root itself is missing or cannot be read: the caller must
    not take that for a root without sources (a build would delete every feed).  An entry
    that cannot be a source (a link loop, a folder name that is not UTF-8) is a warning, as
    are dump files lying in the root itself, where no feed reads them.
    """
    display = printable(str(root))
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        raise SourceError(f"dumps folder {display} does not exist") from None
    except NotADirectoryError:
        raise SourceError(f"dumps folder {display} is not a folder") from None
    except OSError as e:
        raise SourceError(f"cannot read dumps folder {display}: {_strerror(e)}") from None
    is_dump = dump_name_filter(pattern)
    sources: list[str] = []
    warnings: list[str] = []
    loose = 0
    for name in sorted(names):
        if name.startswith("."):
            continue
        path = f"{root}/{name}"
        try:
            st = os.stat(path)
        except OSError as e:
            if os.path.islink(path):
                warnings.append(f"{printable(path)}: skipped: {_strerror(e)}")
            continue
        if S_ISDIR(st.st_mode):
            if is_utf8(name):
                sources.append(name)
            else:
                warnings.append(f"{printable(path)}: skipped: folder name is not valid UTF-8")
        elif is_dump(name):
            loose += 1
    if loose and not sources:
        parent = printable(str(root.parent))
        warnings.append(
            f"{display} holds {loose} dump files but no source folder: each immediate"
            f" subfolder of --dumps is a source; did you mean --dumps {parent}?"
        )
    elif loose:
        warnings.append(
            f"{display} holds {loose} dump files directly: no feed shows them (each immediate"
            " subfolder of --dumps is a source)"
        )
    elif not sources:
        warnings.append(
            f"{display} holds no source folder: each immediate subfolder of --dumps is a source"
        )
    return RootListing(sources, warnings)


def list_sources(root: Path) -> list[str]:
    """The source folders of the dumps root (see ``list_root``)."""
    return list_root(root, "*").sources


def list_dumps(root: Path, source: str, pattern: str) -> list[str]:
    """Every path named like a dump in a source folder, sorted (raises OSError if the folder
    cannot be listed)."""
    is_dump = dump_name_filter(pattern)
    return sorted(f"{source}/{name}" for name in os.listdir(f"{root}/{source}") if is_dump(name))


# -- one file --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileStat:
    """A file named like a dump, as a stat saw it.  ``problem`` says why it cannot be a dump
    when that is known without reading it (not a regular file, a symbolic link that leads
    nowhere, a name that is not UTF-8); ``read_dump`` then rejects it with that reason."""

    rel: str
    source: str
    size: int
    mtime_ns: int
    problem: str | None = None


_GONE = (FileNotFoundError, NotADirectoryError)


def _kind(mode: int) -> str:
    for test, kind in (
        (S_ISFIFO, "a named pipe"),
        (S_ISSOCK, "a socket"),
        (S_ISCHR, "a character device"),
        (S_ISBLK, "a block device"),
        (S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def stat_dump(root: Path, rel: str) -> FileStat | None:
    """A file named like a dump, as it is on disk now: None if it is gone or a folder.

    Whatever else is there gets a FileStat: one that cannot be a dump carries its problem
    (from ``lstat`` when ``stat`` fails, so that a rejection is not re-read until the link
    itself changes).  Raises OSError only when not even ``lstat`` can see the file: its
    folder cannot be searched, which is the folder's problem, not the file's.
    """
    path = f"{root}/{rel}"
    source = rel.partition("/")[0]
    key = index_key(rel)
    try:
        st = os.stat(path)
    except OSError as e:
        try:
            st = os.lstat(path)
        except _GONE:
            return None
        why = (
            "a symbolic link to nothing" if isinstance(e, _GONE) else f"cannot read: {_strerror(e)}"
        )
        return FileStat(key, source, st.st_size, RETRY, why)
    if S_ISDIR(st.st_mode):
        return None
    problem = None
    if not S_ISREG(st.st_mode):
        problem = f"not a regular file ({_kind(st.st_mode)})"
    elif key != rel:
        problem = "file name is not valid UTF-8; rename the file"
    return FileStat(key, source, st.st_size, stored_mtime(st), problem)


def mtime_datetime(mtime_ns: int) -> datetime:
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000, UTC)


_INT64 = 2**63


def stored_mtime(st: os.stat_result) -> int:
    """A file's mtime in nanoseconds as the index stores and compares it: within SQLite's
    64-bit integers.  A file dated after 2262 or before 1677 (a clock gone wrong, an odd
    archive) must not fail the transaction that stores its whole scan."""
    return min(max(st.st_mtime_ns, -_INT64), _INT64 - 1)


def _text(value: str) -> str:
    value.encode("utf-8")  # raises for what SQLite could not store
    return value


def _row(st: FileStat, dump: Dump) -> Row:
    """The row of a parsed dump; raises if any value could not be stored, so that one odd
    dump is rejected rather than failing the whole transaction that stores a scan."""
    published = int(dump.published.timestamp())
    if not -_INT64 <= published < _INT64:
        raise OverflowError(f"time {published} out of range")
    return Row(
        rel=st.rel,
        source=st.source,
        size=st.size,
        mtime_ns=st.mtime_ns,
        id=_text(dump.id),
        url=_text(dump.url),
        title=_text(dump.title),
        published=published,
        provenance=dump.provenance.value,
        warnings=tuple(one_line(w, 1000) for w in dump.warnings),
    )


#: The mtime of a row that must be judged again at every scan: no file has it.  A rejection
#: for a passing cause (a file that cannot be read now, a symbolic link that leads nowhere
#: now) must not stick until the file is modified: chmod or a new link target leave the
#: file's own size and mtime as they were.
RETRY = -1


def rejected(st: FileStat | Row, line: int, reason: str, *, retry: bool = False) -> Row:
    """The row of a file that is not a dump, and why."""
    return Row(
        rel=st.rel,
        source=st.source,
        size=st.size,
        mtime_ns=RETRY if retry else st.mtime_ns,
        line=line,
        reason=one_line(reason, 1000),
    )


def _read(path: str, limit: int, dir_fd: int | None = None) -> bytes:
    """Up to ``limit`` bytes of a regular file (plain os calls: a scan reads thousands of
    heads); with ``dir_fd``, ``path`` is relative to that open folder.  Opened non-blocking,
    so that a named pipe put in a file's place cannot stop the scan."""
    fd = os.open(path, _OPEN_FLAGS, dir_fd=dir_fd)
    try:
        if not S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_dump(
    root: Path, st: FileStat, *, max_bytes: int, head_only: bool
) -> tuple[Row, Dump | None]:
    """Read and parse one file.  Returns its index row and, when read whole, the full Dump.

    Total: whatever goes wrong with this one file is its rejection, a Row with a reason
    (``cannot read: ...`` for the file system, ``cannot parse: ...`` for anything the parser
    did not expect).  Only a file that vanished raises, FileNotFoundError: the caller treats
    it as deleted.
    """
    if st.problem is not None:
        return rejected(st, 1, st.problem), None
    try:
        return _read_dump(root, st, max_bytes=max_bytes, head_only=head_only)
    except _GONE:
        raise FileNotFoundError(printable(f"{root}/{st.rel}")) from None
    except OSError as e:
        return rejected(st, 1, f"cannot read: {_strerror(e)}", retry=True), None
    except RecursionError:
        return rejected(st, 1, "cannot read: the file keeps changing", retry=True), None
    except Exception as e:  # one dump's failure is that dump's rejection
        return rejected(st, 1, f"cannot parse: {_strerror(e)}"), None


def _read_dump(
    root: Path, st: FileStat, *, max_bytes: int, head_only: bool
) -> tuple[Row, Dump | None]:
    display = printable(f"{root}/{st.rel}")
    if st.size > max_bytes:
        return rejected(st, 1, f"file is {st.size} bytes, over the limit of {max_bytes}"), None
    mtime = mtime_datetime(st.mtime_ns)
    limit = HEAD_BYTES if head_only else min(max_bytes, max(st.size, HEAD_BYTES))
    data = _read(f"{root}/{st.rel}", limit + 1)
    if head_only:
        complete = len(data) <= HEAD_BYTES
        data = data[:HEAD_BYTES]
    elif len(data) > limit:
        if limit >= max_bytes:
            return rejected(st, 1, f"file is over the limit of {max_bytes} bytes"), None
        # The file grew since it was listed: read it as it is now.
        now = stat_dump(root, st.rel)
        if now is None:
            raise FileNotFoundError(display)
        return _read_dump(root, now, max_bytes=max_bytes, head_only=False)
    else:
        complete = True
    try:
        dump = parse_dump(data, path=display, mtime=mtime, complete=complete)
        if not complete and dump.provenance is Provenance.MTIME:
            return _read_dump(root, st, max_bytes=max_bytes, head_only=False)
    except DumpError as e:
        if not complete:
            # The head may have cut a long title line: judge the whole file.
            return _read_dump(root, st, max_bytes=max_bytes, head_only=False)
        return rejected(st, e.line, e.reason), None
    return _row(st, dump), dump if complete else None


# -- scanning, in parallel when it pays -----------------------------------------------------

#: Below this many files a scan runs in this process: forking costs more than it saves.
PARALLEL_MIN_FILES = 2000


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One source folder scanned.  ``rows`` and ``deleted`` are what the caller still has to
    store; a worker process stores its own and reports only how many it ``parsed`` and the
    ``warnings`` to log.  ``failed`` says why the folder could not be read: then nothing of
    it was changed or forgotten, and its feeds keep what they had."""

    source: str
    seen: int
    rows: list[DbRow]
    deleted: list[str]
    parsed: int = 0
    warnings: tuple[str, ...] = ()
    built: tuple[FeedResult, ...] = ()
    held: Held | None = None
    failed: str | None = None


def _head_facts(data: bytes) -> tuple[str, str, str, int] | None:
    """``plain_head`` of up to ``HEAD_BYTES + 1`` bytes read from a file's start (one byte
    more tells whether the head is the whole file); None for nothing read."""
    return plain_head(data[:HEAD_BYTES], complete=len(data) <= HEAD_BYTES) if data else None


def _head_of_new(folder: int, name: str, max_bytes: int) -> tuple[os.stat_result, bytes] | None:
    """The fast path for a file the index has never seen: its stat and head, read through one
    descriptor (opening first and asking the descriptor saves a path lookup).  None for
    anything out of the ordinary (not a regular file, too large, cannot be read): ``_judge``
    then decides what it is."""
    fd = os.open(name, _OPEN_FLAGS, dir_fd=folder)
    try:
        st = os.fstat(fd)
        if not S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None
        return st, os.read(fd, HEAD_BYTES + 1)
    finally:
        os.close(fd)


def _judge(root: Path, rel: str, known: Known, max_bytes: int) -> tuple[str, DbRow | None] | None:
    """The slow path, for every file the fast loops did not settle: what it is now.

    None if it is gone (or a folder); else its index key and its row, or no row if the index
    already knows it as it is.  Total but for OSError from ``stat_dump`` (the folder cannot
    be searched), which the folder's handler takes.
    """
    fst = stat_dump(root, rel)
    if fst is None:
        return None
    if known.get(fst.rel) == (fst.size, fst.mtime_ns):
        return fst.rel, None
    try:
        row, _ = read_dump(root, fst, max_bytes=max_bytes, head_only=True)
    except FileNotFoundError:
        return None
    return fst.rel, db_row(row)


def _scan_folder(
    root: Path, folder: int, source: str, pattern: str, max_bytes: int, known: Known
) -> tuple[list[DbRow], set[str]]:
    """Rows for the new and changed dumps of an open source folder, and every dump present.

    The hot loop of a build (100,000 files).  A file the index knows with the same size and
    mtime costs one stat; a new or changed one whose header is in the common form
    (``plain_head``) becomes a row directly.  Any other file, and any file for which anything
    at all fails, goes to ``_judge``: no exception from one file leaves this loop.
    """
    rows: list[DbRow] = []
    present: set[str] = set()
    unusual: list[str] = []
    prefix = f"{source}/"
    is_dump = dump_name_filter(pattern)
    for name in os.listdir(folder):
        if not is_dump(name):
            continue
        rel = prefix + name
        try:
            if not name.isascii() and not is_utf8(name):
                unusual.append(rel)
                continue
            if known:
                st = os.stat(name, dir_fd=folder)
                if known.get(rel) == (st.st_size, st.st_mtime_ns) and S_ISREG(st.st_mode):
                    present.add(rel)
                    continue
            found = _head_of_new(folder, name, max_bytes)
            facts = _head_facts(found[1]) if found is not None else None
        except Exception:  # whatever it is, _judge looks again
            unusual.append(rel)
            continue
        if found is None or facts is None:
            unusual.append(rel)
            continue
        st = found[0]
        dump_id, url, title, published = facts
        present.add(rel)
        mtime = stored_mtime(st)
        rows.append((rel, source, st.st_size, mtime, dump_id, url, title, published, None))
    for rel in unusual:
        judged = _judge(root, rel, known, max_bytes)
        if judged is not None:
            key, row = judged
            present.add(key)
            if row is not None:
                rows.append(row)
    return rows, present


def scan_changes(root: Path, source: str, pattern: str, max_bytes: int, known: Known) -> ScanResult:
    """One source folder against what the index knows of it (``rel -> (size, mtime_ns)``):
    new and changed files parsed, deleted ones named.

    A folder that cannot be read (no permission, a symbolic link loop, an I/O error, gone
    since the root was listed) changes nothing: the result says why in ``failed``, and keeps
    every dump the index knows of it.  Only a folder the root no longer lists loses its dumps
    (the caller does not scan it).
    """
    try:
        folder = os.open(f"{root}/{source}", _OPEN_FLAGS | os.O_DIRECTORY)
    except OSError as e:
        return _unreadable(root, source, known, e)
    try:
        rows, present = _scan_folder(root, folder, source, pattern, max_bytes, known)
    except Exception as e:  # the folder's handler: keep what it had
        return _unreadable(root, source, known, e)
    finally:
        os.close(folder)
    return ScanResult(source, len(present), rows, [rel for rel in known if rel not in present])


def _unreadable(root: Path, source: str, known: Known, e: Exception) -> ScanResult:
    folder = printable(f"{root}/{source}")
    why = f"{folder}: cannot read this folder ({_strerror(e)}); its feeds keep what they had"
    return ScanResult(source, len(known), [], [], failed=why)


#: Runs in a scan worker once its source is indexed, with the worker's own Index: the build
#: uses it to build the feeds that show only that source while other sources are still being
#: scanned.  The feeds it built travel back in the ScanResult.
AfterScan = Callable[[Index, str], list[FeedResult]]
ScanJob = tuple[Path, str, str, int, Known | tuple[str, Path], AfterScan | None]


class Turns:
    """The lock scan workers take turns with to write the index.  SQLite's own busy wait
    sleeps in steps of up to 100 ms; this lock (inherited through fork) wakes the next writer
    at once.  It only saves time -- SQLite keeps the writes apart anyway -- so a holder that
    died with it never blocks the others: after ``patience`` seconds they go ahead."""

    def __init__(self, lock: Any, patience: float = 5.0) -> None:
        self._lock = lock
        self._patience = patience
        self._held = False

    def __enter__(self) -> None:
        self._held = bool(self._lock.acquire(timeout=self._patience))

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._held = False
            self._lock.release()


_WRITER: contextlib.AbstractContextManager[object] = contextlib.nullcontext()


def _init_worker(lock: Any) -> None:
    global _WRITER  # noqa: PLW0603 - per-process state of a pool worker
    _WRITER = Turns(lock)


def _scan_job(job: ScanJob) -> ScanResult:
    root, source, pattern, max_bytes, known, after = job
    if isinstance(known, dict):
        result = scan_changes(root, source, pattern, max_bytes, known)
        return replace(result, parsed=len(result.rows), warnings=_warnings(result.rows))
    try:
        return _scan_in_worker(root, source, pattern, max_bytes, known, after)
    except Exception as e:
        raise _portable(e) from None


def _scan_in_worker(
    root: Path,
    source: str,
    pattern: str,
    max_bytes: int,
    known: tuple[str, Path],
    after: AfterScan | None,
) -> ScanResult:
    # In a worker process: a connection of its own (the parent's must not be used after fork)
    # to read what the index knows of this source and to store what changed, so rows need not
    # travel back to the parent, and one worker's insert overlaps the other's scan.
    db_path, out = known
    index = Index(Path(db_path), root=root, out=out, db=connect(db_path), writer=_WRITER)
    try:
        result = scan_changes(root, source, pattern, max_bytes, known_rows(index.db, source))
        index.apply(result.rows, result.deleted)
        index.held = Held()
        ok = after is not None and result.failed is None
        built = tuple(after(index, source)) if ok and after is not None else ()
    finally:
        index.close()
    warnings = _warnings(result.rows)
    return replace(
        result, rows=[], deleted=[], parsed=len(result.rows), warnings=warnings, built=built,
        held=index.held,
    )  # fmt: skip


def _portable(e: Exception) -> Exception:
    """An exception as it can travel from a worker to its parent.  Damage to the index
    becomes CorruptIndexError (SQLite's error code does not survive the trip); an exception
    that would not unpickle in the parent (which would stop the pool's result thread and hang
    the build) becomes a plain RuntimeError with its message."""
    if is_damage(e) and not isinstance(e, CorruptIndexError):
        return CorruptIndexError(str(e))
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:  # any failure to make the trip
        return RuntimeError(f"{type(e).__name__}: {e}")
    return e


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
    it found and then running ``after``.

    Any exception in a worker reaches the caller as soon as it happens (the jobs not started
    are cancelled); a worker that dies outright fails the scan with BrokenProcessPool
    instead of hanging it.
    """
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
            results.extend(_scan_parallel(root, sources, index, pattern, max_bytes, after, bar))
        else:
            for s in sources:
                result = _scan_job((root, s, pattern, max_bytes, known_rows(index.db, s), None))
                results.append(result)
                bar.update(result.seen)
    finally:
        bar.close()
    return results


def _scan_parallel(
    root: Path,
    sources: list[str],
    index: Index,
    pattern: str,
    max_bytes: int,
    after: AfterScan | None,
    bar: Any,
) -> list[ScanResult]:
    import multiprocessing
    from concurrent.futures import FIRST_EXCEPTION, wait

    known = (str(index.path), index.out)
    lock = multiprocessing.get_context("fork").Lock()
    turns = Turns(lock)
    workers = min(os.cpu_count() or 1, len(sources))
    results: list[ScanResult] = []
    pool = fork_pool(workers, initializer=_init_worker, initargs=(lock,))
    interrupted = False
    try:
        pending = {
            pool.submit(_scan_job, (root, s, pattern, max_bytes, known, after)) for s in sources
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                result = future.result()  # raises what the worker raised
                if result.held:
                    with turns:
                        index.store_held(result.held)
                results.append(result)
                bar.update(result.seen)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        stop_workers(pool, interrupted=interrupted)
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
