"""The filesystem scan: no file, folder or name on disk stops a build.

Whatever sits in the dumps tree, a build publishes every regular valid dump and names every
other file named like a dump (a one-line rejection ``path:line: reason``, the same in
``build`` and ``check``); a folder that cannot be read is a warning and its feeds keep what
they had; the dumps root's own oddities are warnings or, when it is missing, an error raised
before anything is removed.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbridge import scan as scan_module
from feedbridge.build import check_tree
from feedbridge.config import Config
from feedbridge.errors import SourceError
from feedbridge.model import BuildReport
from feedbridge.scan import index_key, printable

from .conftest import EXAMPLES
from .helpers import build, snapshot, target_args

#: Every dump of a feed is shown: the tests compare what is published with what is on disk.
ALL = Config(limit=1000)


def dump(n: int, *, epoch_s: int = 1_700_000_000) -> bytes:
    return (
        f"<!--{(epoch_s + n) * 1000}-->\n[Title {n}](https://news.example.org/a/{n}.html)\n"
        f"------\n\n<p>body {n}</p>\n"
    ).encode()


def url(n: int) -> str:
    return f"https://news.example.org/a/{n}.html"


def published(out: Path, feed: str = "s") -> str:
    path = out / feed / "atom.xml"
    return path.read_text("utf-8") if path.exists() else ""


def named(report: BuildReport) -> dict[str, str]:
    """Rejected path -> reason, checking that each rejection is one line."""
    for r in report.rejected:
        assert "\n" not in str(r) and "\r" not in str(r), str(r)
        str(r).encode("utf-8")  # no lone surrogates
    return {r.path: r.reason for r in report.rejected}


def checked(root: Path) -> dict[str, str]:
    rejections, _, _ = check_tree(root, ALL)
    return {path: reason for path, _, reason in rejections}


def bpath(folder: Path, name: bytes) -> str:
    """A path whose last part is raw bytes (not UTF-8), as Python names it."""
    return os.fsdecode(os.fsencode(folder) + b"/" + name)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A dumps root with source ``s`` holding three good dumps."""
    root = tmp_path / "dumps"
    (root / "s").mkdir(parents=True)
    for n in range(3):
        (root / "s" / f"{n}.md").write_bytes(dump(n))
    return root


@pytest.fixture(params=["serial", "parallel"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every oddity is tried by the one-process scan and by the forked scan workers."""
    if request.param == "parallel":
        monkeypatch.setattr(scan_module, "PARALLEL_MIN_FILES", 1)
    return str(request.param)


def _loop(root: Path) -> list[str]:
    folder = root / "s"
    (folder / "a.md").symlink_to("b.md")
    (folder / "b.md").symlink_to("a.md")
    return [str(folder / "a.md"), str(folder / "b.md")]


def _self_link(root: Path) -> list[str]:
    (root / "s" / "me.md").symlink_to("me.md")
    return [str(root / "s" / "me.md")]


def _dangling(root: Path) -> list[str]:
    (root / "s" / "gone.md").symlink_to("nowhere.md")
    return [str(root / "s" / "gone.md")]


def _fifo(root: Path) -> list[str]:
    os.mkfifo(root / "s" / "pipe.md")
    return [str(root / "s" / "pipe.md")]


def _socket(root: Path) -> list[str]:
    path = root / "s" / "sock.md"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
    finally:
        sock.close()
    return [str(path)]


def _device(root: Path) -> list[str]:
    path = root / "s" / "null.md"
    try:
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 3))  # S_IFCHR: /dev/null's numbers
    except PermissionError:
        path.symlink_to("/dev/null")  # without CAP_MKNOD: a link to a device is the same case
    return [str(path)]


def _bad_name(root: Path) -> list[str]:
    path = bpath(root / "s", b"caf\xe9-\xff.md")
    Path(path).write_bytes(dump(10))
    return [printable(path)]


def _folder_named_like_a_dump(root: Path) -> list[str]:
    (root / "s" / "folder.md").mkdir()
    (root / "s" / "folder.md" / "inner.md").write_bytes(dump(11))
    return []


def _empty(root: Path) -> list[str]:
    (root / "s" / "empty.md").write_bytes(b"")
    return [str(root / "s" / "empty.md")]


def _root_self_link(root: Path) -> list[str]:
    (root / "x").symlink_to(root / "x")
    return []


def _root_dot_link(root: Path) -> list[str]:
    (root / "loop").symlink_to(".")
    return []


def _outside_link(root: Path) -> list[str]:
    outside = root.parent / "elsewhere"
    outside.mkdir()
    (outside / "9.md").write_bytes(dump(9))
    (root / "ext").symlink_to(outside)
    return []


def _bad_folder_name(root: Path) -> list[str]:
    folder = Path(bpath(root, b"\xff-src"))
    folder.mkdir()
    (folder / "1.md").write_bytes(dump(12))
    return []


ODDITIES: dict[str, Callable[[Path], list[str]]] = {
    "symlink loop": _loop,
    "self symlink": _self_link,
    "dangling symlink": _dangling,
    "fifo": _fifo,
    "socket": _socket,
    "device": _device,
    "non-UTF-8 file name": _bad_name,
    "folder named like a dump": _folder_named_like_a_dump,
    "empty file": _empty,
    "root self symlink": _root_self_link,
    "root link to itself": _root_dot_link,
    "link to a folder outside": _outside_link,
    "non-UTF-8 folder name": _bad_folder_name,
}


@pytest.mark.parametrize("oddity", sorted(ODDITIES))
def test_filesystem_oddities_never_stop_a_build(
    tree: Path, tmp_path: Path, oddity: str, mode: str
) -> None:
    """Cold and incremental: the good dumps are published, the odd files named, in one line,
    the same by ``check``; the good feed is the same as without the oddity."""
    clean = tmp_path / "clean"
    build(tree, clean, ALL, state=tmp_path / "clean-state")
    out, state = tmp_path / "out", tmp_path / "state"
    build(tree, out, ALL, state=state)  # the index knows the good files first
    odd = ODDITIES[oddity](tree)
    for attempt in ("incremental", "again", "cold"):
        if attempt == "cold":
            shutil.rmtree(state)
        report = build(tree, out, ALL, state=state)
        rejected = named(report)
        assert sorted(rejected) == sorted(odd), attempt
        assert all(rejected.values())
        assert published(out) == published(clean), attempt
    assert checked(tree) == rejected


def test_a_name_with_a_newline_is_published_and_named_on_one_line(tree: Path) -> None:
    (tree / "s" / "new\nline.md").write_bytes(dump(20))
    (tree / "s" / "bad\nline.md").write_bytes(b"not a dump\n")
    report = build(tree, tree.parent / "out", ALL)
    assert url(20) in published(tree.parent / "out")
    assert list(named(report)) == [printable(str(tree / "s" / "bad\nline.md"))]
    assert "bad\\nline.md" in str(report.rejected[0])
    assert checked(tree) == named(report)


def test_a_non_utf8_name_is_one_row_that_stays_rejected(tree: Path, tmp_path: Path) -> None:
    """Its index key is stable: rebuilt without change, nothing is parsed again."""
    _bad_name(tree)
    out, state = tmp_path / "out", tmp_path / "state"
    first = build(tree, out, ALL, state=state)
    again = build(tree, out, ALL, state=state)
    assert again.parsed == 0
    assert named(again) == named(first)
    assert index_key(bpath(tree / "s", b"\xff.md")).endswith("s/\\xff.md")


def test_a_fixed_link_is_published_without_the_link_changing(tree: Path, tmp_path: Path) -> None:
    """A rejection for a passing cause is judged again at every scan: repairing a link's
    target leaves the link's own size and mtime as they were."""
    (tree / "s" / "link.md").symlink_to("target.md")
    out, state = tmp_path / "out", tmp_path / "state"
    assert list(named(build(tree, out, ALL, state=state))) == [str(tree / "s" / "link.md")]
    (tree / "s" / "target.txt").write_bytes(dump(30))
    (tree / "s" / "target.txt").rename(tree / "s" / "target.md")
    report = build(tree, out, ALL, state=state)
    assert named(report) == {}
    assert url(30) in published(out)


# -- what cannot be read: simulated, since tests run as root ---------------------------------


@pytest.fixture
def deny(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Names (last path parts) whose open and listing fail with EACCES, as chmod 000 would
    for an unprivileged process.  Also in forked scan workers, which inherit the patch."""
    denied: set[str] = set()
    real_open, real_listdir = os.open, os.listdir

    def last(path: Any) -> str:
        return os.fsdecode(path).rstrip("/").rpartition("/")[2] if not isinstance(path, int) else ""

    def fake_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if last(path) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    def fake_listdir(path: Any = ".") -> list[str]:
        if last(path) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "listdir", fake_listdir)
    yield denied


def test_unreadable_file_is_rejected_then_published_once_readable(
    tree: Path, tmp_path: Path, deny: set[str], mode: str
) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    (tree / "s" / "7.md").write_bytes(dump(7))
    deny.add("7.md")
    report = build(tree, out, ALL, state=state)
    assert named(report) == {str(tree / "s" / "7.md"): "cannot read: Permission denied"}
    assert url(1) in published(out) and url(7) not in published(out)
    assert checked(tree) == named(report)
    deny.clear()  # chmod 644: the file's size and mtime do not change
    report = build(tree, out, ALL, state=state)
    assert named(report) == {}
    assert url(7) in published(out)


def test_unreadable_source_folder_keeps_its_feed(
    tree: Path, tmp_path: Path, deny: set[str], mode: str
) -> None:
    """A folder that cannot be read for one scan is a warning; its feed keeps what it had
    (same bytes, not even rewritten), its dumps stay in the index, the other feeds build."""
    shutil.copytree(EXAMPLES / "voa", tree / "voa")
    out, state = tmp_path / "out", tmp_path / "state"
    build(tree, out, ALL, state=state)
    before = snapshot(out)
    (tree / "s" / "5.md").write_bytes(dump(5))
    (tree / "voa" / "1.md").write_bytes(dump(6))
    deny.add("s")
    report = build(tree, out, ALL, state=state)
    assert [w for w in report.warnings if "cannot read this folder" in w] == [
        f"{tree / 's'}: cannot read this folder (Permission denied); its feeds keep what they had"
    ]
    assert snapshot(out)["s/atom.xml"] == before["s/atom.xml"]
    assert [f.entries for f in report.feeds if f.name == "s"] == [3]
    assert url(6) in published(out, "voa")
    assert report.removed == ()
    deny.clear()
    report = build(tree, out, ALL, state=state)
    assert report.warnings == ()
    assert report.parsed == 1  # 5.md: the others were kept, not forgotten
    assert url(5) in published(out)


def test_unreadable_folder_on_a_cold_build_writes_nothing_for_it(
    tree: Path, tmp_path: Path, deny: set[str]
) -> None:
    out = tmp_path / "out"
    build(tree, out, ALL, state=tmp_path / "state")
    before = snapshot(out)["s/atom.xml"]
    deny.add("s")
    report = build(tree, out, ALL, state=tmp_path / "other-state")
    assert any("cannot read this folder" in w for w in report.warnings)
    assert snapshot(out)["s/atom.xml"] == before


def test_a_file_that_vanishes_or_becomes_a_folder_mid_scan(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed, then gone or a folder when it is opened: not a dump, not an error."""
    (tree / "s" / "gone.md").write_bytes(dump(40))
    (tree / "s" / "dir.md").write_bytes(dump(41))
    real_head = scan_module._head_of_new

    def racing(folder: int, name: str, max_bytes: int) -> Any:
        if name == "gone.md":
            (tree / "s" / "gone.md").unlink()
        if name == "dir.md":
            (tree / "s" / "dir.md").unlink()
            (tree / "s" / "dir.md").mkdir()
        return real_head(folder, name, max_bytes)

    monkeypatch.setattr(scan_module, "_head_of_new", racing)
    report = build(tree, tmp_path / "out", ALL)
    assert named(report) == {}
    assert report.scanned == 3


def test_an_exception_from_one_dump_is_its_rejection_in_build_and_check(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Whatever the parser raises for one dump (here a bug it does not expect) becomes that
    dump's rejection; the others are published."""
    from feedbridge.dump import parse_dump as real_parse

    def buggy(data: bytes, **kw: Any) -> Any:
        if b"Title 1]" in data:
            raise OverflowError("date value out of range")
        return real_parse(data, **kw)

    monkeypatch.setattr(scan_module, "parse_dump", buggy)
    monkeypatch.setattr(scan_module, "plain_head", lambda data, complete: None)
    report = build(tree, tmp_path / "out", ALL)
    expected = {str(tree / "s" / "1.md"): "cannot parse: OverflowError: date value out of range"}
    assert named(report) == expected
    assert url(0) in published(tmp_path / "out") and url(2) in published(tmp_path / "out")
    assert checked(tree) == expected


def test_an_exception_from_the_fast_header_path_falls_back_to_the_parser(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(data: bytes, complete: bool) -> Any:
        raise ValueError("bug")

    monkeypatch.setattr(scan_module, "plain_head", broken)
    report = build(tree, tmp_path / "out", ALL)
    assert named(report) == {}
    assert all(url(n) in published(tmp_path / "out") for n in range(3))


def test_a_body_that_cannot_be_cleaned_is_that_dumps_rejection(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedbridge import content

    real_clean = content.clean_html

    def buggy(html: str, **kw: Any) -> Any:
        if "body 2" in html:
            raise RecursionError("maximum recursion depth exceeded")
        return real_clean(html, **kw)

    monkeypatch.setattr(content, "clean_html", buggy)
    report = build(tree, tmp_path / "out", ALL)
    assert named(report) == {
        str(tree / "s" / "2.md"): "cannot clean the body: RecursionError: maximum recursion "
        "depth exceeded"
    }
    assert url(1) in published(tmp_path / "out") and url(2) not in published(tmp_path / "out")


# -- the dumps root ----------------------------------------------------------------------------


def test_a_root_holding_dumps_directly_is_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "voa"
    root.mkdir()
    for n in range(12):
        (root / f"{n}.md").write_bytes(dump(n))
    report = build(root, tmp_path / "out")
    assert report.warnings == (
        f"{root} holds 12 dump files but no source folder: each immediate subfolder of"
        f" --dumps is a source; did you mean --dumps {tmp_path}?",
    )
    result = subprocess.run(
        [sys.executable, "-m", "feedbridge", "build", *target_args(root, tmp_path / "o2")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0
    assert f"warning: {report.warnings[0]}\n" in result.stderr


def test_an_empty_root_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "dumps").mkdir()
    report = build(tmp_path / "dumps", tmp_path / "out")
    assert report.warnings == (
        f"{tmp_path / 'dumps'} holds no source folder: each immediate subfolder of --dumps"
        " is a source",
    )


def test_dumps_beside_sources_are_a_warning(tree: Path, tmp_path: Path) -> None:
    (tree / "stray.md").write_bytes(dump(50))
    report = build(tree, tmp_path / "out")
    assert report.warnings == (
        f"{tree} holds 1 dump files directly: no feed shows them (each immediate subfolder"
        " of --dumps is a source)",
    )


def test_root_entries_that_cannot_be_sources_are_warnings(tree: Path, tmp_path: Path) -> None:
    _root_self_link(tree)
    _bad_folder_name(tree)
    report = build(tree, tmp_path / "out")
    assert sorted(report.warnings) == [
        f"{tree}/\\xff-src: skipped: folder name is not valid UTF-8",
        f"{tree}/x: skipped: Too many levels of symbolic links",
    ]
    assert [f.name for f in report.feeds] == ["s"]


@pytest.mark.parametrize("state", ["missing", "a file"])
def test_a_missing_root_raises_before_anything_is_removed(
    tree: Path, tmp_path: Path, state: str
) -> None:
    out, state_dir = tmp_path / "out", tmp_path / "state"
    build(tree, out, state=state_dir)
    before = snapshot(out)
    shutil.rmtree(tree)
    if state == "a file":
        tree.write_bytes(b"")
    with pytest.raises(SourceError, match=f"dumps folder {tree} "):
        build(tree, out, state=state_dir)
    assert snapshot(out) == before
    with pytest.raises(SourceError):
        check_tree(tree, ALL)


def test_an_unreadable_root_raises_source_error(tree: Path, tmp_path: Path, deny: set[str]) -> None:
    deny.add(tree.name)
    with pytest.raises(SourceError, match=r"cannot read dumps folder .*: Permission denied"):
        build(tree, tmp_path / "out")
    with pytest.raises(SourceError):
        check_tree(tree, ALL)


# -- random trees --------------------------------------------------------------------------------

KINDS = ("valid", "valid", "valid", "empty", "garbage", "loop", "dangling", "folder", "fifo")
NAMES = ("plain", "plain", "newline", "bytes", "unicode")
entry = st.tuples(st.sampled_from(KINDS), st.sampled_from(NAMES))


def _name(i: int, style: str) -> str:
    if style == "newline":
        return f"n{i}\n.md"
    if style == "bytes":
        return os.fsdecode(f"b{i}".encode() + b"\xff.md")
    if style == "unicode":
        return f"新闻 {i}.md"
    return f"{i}.md"


def _make(folder: Path, i: int, kind: str, style: str) -> tuple[str, bool] | None:
    """Create one entry; returns (its display path, whether it is a publishable dump), or None
    for a folder."""
    path = Path(f"{folder}/{_name(i, style)}")
    if kind == "folder":
        path.mkdir()
        return None
    if kind == "valid":
        path.write_bytes(dump(i))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x00\xff garbage \n" * 3)
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "dangling":
        path.symlink_to("nowhere")
    elif kind == "fifo":
        os.mkfifo(path)
    return printable(str(path)), kind == "valid" and style != "bytes"


def _clear(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()


ROOT_ODDITIES = {
    "self link": _root_self_link,
    "link to itself": _root_dot_link,
    "non-UTF-8 folder": _bad_folder_name,
    "stray dump": lambda root: [(root / "stray.md").write_bytes(dump(90))],
    "dangling link": lambda root: [(root / "gone").symlink_to("nowhere")],
}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(st.lists(entry, max_size=10), min_size=1, max_size=3),
    st.sets(st.sampled_from(sorted(ROOT_ODDITIES))),
    st.booleans(),
)
def test_random_trees_never_stop_a_build(
    tmp_path_factory: pytest.TempPathFactory,
    generations: list[list[tuple[str, str]]],
    root_oddities: set[str],
    parallel: bool,
) -> None:
    """Trees of good and bad files, links, loops, pipes and folders under odd names, changed
    between builds (a folder where a file was, and back), beside odd entries in the root, by
    the one-process scan or the forked workers: every build completes, publishes each regular
    valid dump, names each other file, agrees with ``check``, and equals a cold build."""
    tmp = tmp_path_factory.mktemp("tree")
    root = tmp / "dumps"
    folder = root / "s"
    folder.mkdir(parents=True)
    for oddity in sorted(root_oddities):
        ROOT_ODDITIES[oddity](root)
    out, state = tmp / "out", tmp / "state"
    minimum = 1 if parallel else scan_module.PARALLEL_MIN_FILES
    with mock.patch.object(scan_module, "PARALLEL_MIN_FILES", minimum):
        for generation in generations:
            _clear(folder)
            made = [_make(folder, i, kind, style) for i, (kind, style) in enumerate(generation)]
            good = {i for i, m in enumerate(made) if m is not None and m[1]}
            bad = sorted(m[0] for m in made if m is not None and not m[1])
            report = build(root, out, ALL, state=state)
            atom = published(out)
            assert [i for i in range(len(made)) if url(i) in atom] == sorted(good)
            assert sorted(named(report)) == bad
            assert checked(root) == named(report)
            assert all("\n" not in w for w in report.warnings)
            cold = build(root, tmp / "cold", ALL, state=tmp / "cold-state")
            assert published(tmp / "cold") == atom
            assert named(cold) == named(report)
            shutil.rmtree(tmp / "cold-state")


# -- scan workers --------------------------------------------------------------------------------

WORKER_FAILS = """
import os, sys
from datetime import UTC, datetime
from pathlib import Path
from feedbridge import scan
from feedbridge.app import run_build
from feedbridge.config import Config
from feedbridge.errors import LockedError

scan.PARALLEL_MIN_FILES = 1
real = scan.scan_changes

def failing(root, source, *args):
    if source == "b":
        if sys.argv[1] == "dies":
            os._exit(3)
        raise LockedError("an error whose class cannot be rebuilt from its message", 1)
    return real(root, source, *args)

scan.scan_changes = failing
try:
    run_build(Config(), dumps=Path(sys.argv[2]), out=Path(sys.argv[3]),
              base_url="https://x.example/", state_dir=Path(sys.argv[4]),
              now=datetime(2026, 1, 1, tzinfo=UTC))
except Exception as e:
    print(type(e).__name__, e)
"""


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_failing_scan_worker_fails_the_build_instead_of_hanging_it(
    tmp_path: Path, how: str
) -> None:
    """An exception that would not unpickle in the parent, or a worker that dies outright,
    used to stop multiprocessing.Pool's result handling for ever."""
    root = tmp_path / "dumps"
    for source in ("a", "b"):
        (root / source).mkdir(parents=True)
        (root / source / "1.md").write_bytes(dump(1))
    args = [str(root), str(tmp_path / "out"), str(tmp_path / "state")]
    result = subprocess.run(
        [sys.executable, "-c", WORKER_FAILS, how, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,  # a hang, not a speed target
    )
    assert result.returncode == 0, result.stderr
    expected = "BrokenProcessPool" if how == "dies" else "RuntimeError LockedError: an error"
    assert result.stdout.startswith(expected), result.stdout


def test_an_orphaned_scan_worker_publishes_nothing(tree: Path, tmp_path: Path) -> None:
    """A worker whose parent build was killed stops before it writes a feed to OUT."""
    from feedbridge.build import SourceFeeds, Target
    from feedbridge.config import resolve_feeds
    from feedbridge.index import Index

    from .conftest import BASE_URL, NOW

    out = tmp_path / "out"
    index = Index(tmp_path / "index", root=tree, out=out)
    try:
        target = Target(dumps=tree, out=out, base_url=BASE_URL)
        feeds = tuple(resolve_feeds(target.config, ["s"]))
        now = int(NOW.timestamp())
        orphan = SourceFeeds(target, feeds, now, parent=os.getpid())  # not our parent
        assert orphan(index, "s") == []
        assert not out.exists()
        child = SourceFeeds(target, feeds, now, parent=os.getppid())
        assert [f.name for f in child(index, "s")] == ["s"]
        assert (out / "s" / "atom.xml").exists()
    finally:
        index.close()


def test_a_folder_gone_after_the_root_was_listed_keeps_its_feed(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source renamed or removed mid-build is not taken as empty: its feed is emptied only
    by a later build whose listing of the root no longer has it (then it is removed)."""
    from feedbridge import build as build_module

    out, state = tmp_path / "out", tmp_path / "state"
    build(tree, out, ALL, state=state)
    before = snapshot(out)["s/atom.xml"]
    shutil.move(tree / "s", tmp_path / "moved")
    (tree / "t").mkdir()
    stale = scan_module.RootListing(["s", "t"], [])
    with monkeypatch.context() as m:
        m.setattr(build_module, "list_root", lambda root, pattern: stale)
        report = build(tree, out, ALL, state=state)
    assert snapshot(out)["s/atom.xml"] == before
    assert any(w.startswith(f"{tree / 's'}: cannot read this folder") for w in report.warnings)
    report = build(tree, out, ALL, state=state)
    assert not (out / "s").exists()
    assert [f.name for f in report.feeds] == ["t"]


def test_a_dumps_root_whose_own_name_is_not_utf8(tmp_path: Path) -> None:
    """The index stores the root's path too: as text, not as the surrogates Python uses."""
    root = Path(bpath(tmp_path, b"d\xff"))
    (root / "s").mkdir(parents=True)
    (root / "s" / "1.md").write_bytes(dump(1))
    (root / "s" / "2.md").write_bytes(b"not a dump\n")
    out, state = tmp_path / "out", tmp_path / "state"
    report = build(root, out, ALL, state=state)
    assert url(1) in published(out)
    assert list(named(report)) == [f"{tmp_path}/d\\xff/s/2.md"]
    assert build(root, out, ALL, state=state).parsed == 0
