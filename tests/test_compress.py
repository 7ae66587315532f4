"""Precompressed twins: every file of OUT has a byte-stable ``.gz`` beside it, written with
it, only when it changed, and removed with it."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import struct
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbridge import compress, publish
from feedbridge.compress import gzip_twin, twin_path
from feedbridge.errors import PublishError
from feedbridge.publish import Outputs, remove_output, write_output

from .helpers import build, make_corpus, snapshot


def _documents(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file() and p.suffix != ".gz")


def _twins(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.gz"))


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    dumps = make_corpus(tmp_path / "dumps")
    out = tmp_path / "out"
    build(dumps, out)
    return dumps, out


def test_every_file_has_a_twin_that_decompresses_to_it(corpus: tuple[Path, Path]) -> None:
    _, out = corpus
    documents = _documents(out)
    assert {p.name for p in documents} >= {"index.html", "feeds.opml", "atom.xml", "rss.xml"}
    assert _twins(out) == [twin_path(p) for p in documents]
    for doc in documents:
        twin = twin_path(doc).read_bytes()
        assert gzip.decompress(twin) == doc.read_bytes(), doc
        flags, mtime = struct.unpack("<BI", twin[3:8])
        assert flags == 0, "no file name, comment or extra field in the header"
        assert mtime == 0


def test_twin_bytes_are_stable_across_cold_builds(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    build(dumps, tmp_path / "a", state=tmp_path / "sa")
    build(dumps, tmp_path / "b", state=tmp_path / "sb")
    a = {k: v[0] for k, v in snapshot(tmp_path / "a").items() if k.endswith(".gz")}
    b = {k: v[0] for k, v in snapshot(tmp_path / "b").items() if k.endswith(".gz")}
    assert a and a == b


def test_second_build_changes_no_twin_byte_or_mtime(corpus: tuple[Path, Path]) -> None:
    dumps, out = corpus
    before = snapshot(out)
    build(dumps, out)
    assert snapshot(out) == before


def test_rendering_unchanged_bytes_does_not_rewrite_the_twin(tmp_path: Path) -> None:
    path = tmp_path / "feed" / "atom.xml"
    assert write_output(path, b"<feed/>\n")
    twin = twin_path(path)
    stat = twin.stat()
    os.utime(twin, ns=(1, 1))
    assert not write_output(path, b"<feed/>\n")
    assert twin.stat().st_mtime_ns == 1 and twin.stat().st_ino == stat.st_ino


def test_changed_file_gets_a_new_twin(tmp_path: Path) -> None:
    path = tmp_path / "index.html"
    write_output(path, b"old")
    assert write_output(path, b"new")
    assert gzip.decompress(twin_path(path).read_bytes()) == b"new"


def test_a_missing_twin_is_written_again(tmp_path: Path) -> None:
    path = tmp_path / "feeds.opml"
    write_output(path, b"<opml/>")
    twin_path(path).unlink()
    assert not write_output(path, b"<opml/>")
    assert twin_path(path).read_bytes() == gzip_twin(b"<opml/>")


@pytest.mark.parametrize("failing", ["rss.xml", "rss.xml.gz"])
def test_a_write_failing_halfway_heals_on_the_next_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "rss.xml"
    write_output(path, b"old")
    real = publish.write_atomic

    def fail_on_the_document(target: Path, data: bytes) -> None:
        if target.name == failing:
            raise PublishError(f"cannot write {target}: disk full")
        real(target, data)

    monkeypatch.setattr(publish, "write_atomic", fail_on_the_document)
    with pytest.raises(PublishError):
        write_output(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert write_output(path, b"new")
    assert gzip.decompress(twin_path(path).read_bytes()) == b"new"


def test_remove_output_takes_the_twin(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    write_output(path, b"{}")
    assert remove_output(path)
    assert not path.exists() and not twin_path(path).exists()
    assert not remove_output(path)


def test_removed_feed_leaves_no_twin(corpus: tuple[Path, Path]) -> None:
    dumps, out = corpus
    shutil.rmtree(dumps / "ft")
    report = build(dumps, out)
    assert not (out / "ft").exists()
    assert len(report.removed) == 4  # three feeds and the page
    assert _twins(out) == [twin_path(p) for p in _documents(out)]


def test_outputs_compress_alongside_and_write_only_what_changed(tmp_path: Path) -> None:
    same, new = tmp_path / "f" / "atom.xml", tmp_path / "f" / "rss.xml"
    write_output(same, b"unchanged")
    before = twin_path(same).stat().st_mtime_ns
    threads = threading.active_count()
    with Outputs() as outputs:
        outputs.add(same, b"unchanged")
        outputs.add(new, b"<rss/>" * 1000)
        assert outputs.write() == [new]
    assert threading.active_count() == threads
    assert gzip.decompress(twin_path(new).read_bytes()) == b"<rss/>" * 1000
    assert twin_path(new).read_bytes() == gzip_twin(b"<rss/>" * 1000)
    assert twin_path(same).stat().st_mtime_ns == before


def test_outputs_leave_no_thread_and_no_file_when_the_caller_fails(tmp_path: Path) -> None:
    threads = threading.active_count()
    with pytest.raises(RuntimeError), Outputs() as outputs:
        outputs.add(tmp_path / "atom.xml", b"x" * 100_000)
        raise RuntimeError("render failed")
    assert threading.active_count() == threads
    assert list(tmp_path.iterdir()) == []


def test_a_twin_deleted_behind_feedbridge_is_written_again(corpus: tuple[Path, Path]) -> None:
    dumps, out = corpus
    twin = twin_path(out / "voa" / "rss.xml")
    twin.unlink()
    build(dumps, out)
    assert gzip.decompress(twin.read_bytes()) == (out / "voa" / "rss.xml").read_bytes()


def test_a_stale_twin_beside_an_unchanged_file_is_mended(tmp_path: Path) -> None:
    """A build killed between a twin and its file (kill -9 test, round 10) can leave a twin of
    bytes the file never had; the next write of the same file mends it."""
    path = tmp_path / "atom.xml"
    write_output(path, b"<feed>one</feed>")
    twin_path(path).write_bytes(gzip_twin(b"<feed>two</feed>"))  # the killed build's twin
    assert not write_output(path, b"<feed>one</feed>")  # the file itself is unchanged
    assert gzip.decompress(twin_path(path).read_bytes()) == b"<feed>one</feed>"


def test_a_stale_twin_in_out_is_mended_by_the_next_build(corpus: tuple[Path, Path]) -> None:
    dumps, out = corpus
    twin = twin_path(out / "voa" / "atom.xml")
    twin.write_bytes(gzip_twin(b"not this feed"))
    build(dumps, out)
    assert gzip.decompress(twin.read_bytes()) == (out / "voa" / "atom.xml").read_bytes()


# -- twins made a piece at a time ---------------------------------------------------------------

#: What starts a piece, and what only looks like it: every kind of document the twins cut.
_STARTS = (b"<item>", b"<entry>", b'\n    {\n      "id"', b"<article", b"<item", b"<entr", b"")
_HEADS = (b"", b"{", b'<?xml?>\n<rss version="2.0">', b"<feed>", b"<!DOCTYPE html>", b"\x1f\x8b")


@st.composite
def _any_documents(draw: st.DrawFn) -> bytes:
    """Heads of each kind, entries of every size (a few bytes to more than deflate's window),
    dense runs of starts, random bytes."""
    parts = [draw(st.sampled_from(_HEADS))]
    for _ in range(draw(st.integers(0, 12))):
        fill = draw(st.binary(min_size=1, max_size=40))
        parts.append(draw(st.sampled_from(_STARTS)) + fill * draw(st.integers(0, 1500)))
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(_STARTS)) * draw(st.integers(0, 3000)))
    return b"".join(parts)


@pytest.fixture
def fresh_memo(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Replace the process's memo of compressed pieces with an empty one of ``capacity``."""

    def fresh(capacity: int = compress._MEMO_BYTES) -> None:
        monkeypatch.setattr(compress, "_memo", compress._Memo(capacity))

    fresh()
    return fresh


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_any_documents(), other=_any_documents())
def test_a_twin_decompresses_to_its_document_whatever_the_memo_holds(
    data: bytes, other: bytes
) -> None:
    """gzip (and zlib, as any reader does) reads back the document; the bytes do not depend on
    what the memo holds: nothing, the pieces of other documents, or of this one."""
    saved = compress._memo
    try:
        compress._memo = compress._Memo(compress._MEMO_BYTES)
        cold = gzip_twin(data)
        assert gzip.decompress(cold) == data
        assert zlib.decompress(cold, wbits=31) == data
        assert struct.unpack("<BI", cold[3:8]) == (0, 0)  # no name, mtime 0
        gzip_twin(other)
        gzip_twin(data[: len(data) // 2] + other)
        assert gzip_twin(data) == cold
        compress._memo = compress._Memo(1)  # keeps nothing
        assert gzip_twin(data) == cold
    finally:
        compress._memo = saved


def _feed(entries: list[bytes]) -> bytes:
    head = b'<?xml version="1.0"?>\n<rss version="2.0">\n  <channel>\n    <title>t</title>'
    return head + b"".join(b"\n    <item>" + e + b"</item>" for e in entries) + b"\n</rss>\n"


def _entry_text(i: int) -> bytes:
    rnd = random.Random(i)
    return bytes(rnd.choices(b"abcdefghij klmnop\n<>&", k=rnd.randint(200, 3000)))


def test_a_new_entry_compresses_only_the_pieces_it_changes(
    fresh_memo: Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's case: one entry in front, the oldest gone: the head, the new piece and the
    two whose window it changes are compressed, the rest come from the memo."""
    calls: list[int] = []
    real = compress._deflate

    def counting(piece: bytes, window: bytes) -> bytes:
        calls.append(len(piece))
        return real(piece, window)

    monkeypatch.setattr(compress, "_deflate", counting)
    before = _feed([_entry_text(i) for i in range(1, 51)])
    gzip_twin(before)
    calls.clear()
    after = _feed([_entry_text(i) for i in range(0, 50)])
    twin = gzip_twin(after)
    assert len(calls) <= 5, calls  # head, new, two after it, the last (its tail changed)
    assert gzip.decompress(twin) == after
    fresh_memo(compress._MEMO_BYTES)
    assert gzip_twin(after) == twin


def test_twins_made_side_by_side_are_the_twins_made_alone(
    fresh_memo: Callable[[int], None],
) -> None:
    """Threads share the memo (Outputs compresses a feed's files at once; the archive's
    writers too), and a small memo evicts as they go: each twin is still its document's."""
    docs = [_feed([_entry_text(i) for i in range(start, start + 30)]) for start in range(40)]
    docs += [d.replace(b"<item>", b"<entry>") for d in docs[:10]]
    alone = []
    for doc in docs:
        fresh_memo(compress._MEMO_BYTES)
        alone.append(gzip_twin(doc))
    fresh_memo(64 * 1024)  # a few documents' worth: evictions while others read
    with ThreadPoolExecutor(8) as pool:
        for _ in range(2):
            assert list(pool.map(gzip_twin, docs)) == alone


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<item>",
        b"{",
        b"<rss>" + b"<item>" * 300_000,  # starts only: more than one a KiB
        b"<rss>" + b"<item>" * (2_000_000 // 1024 + 60) + b"x" * 2_000_000,  # all up front
        b"<feed>" + b"<entry>x" * 10_000,
        b"{" + b'\n    {\n      "id"' * 50_000,
        b"<html>" + b"<article" * 1000 + bytes(range(256)) * 4000,
        bytes(random.Random(3).randbytes(1_500_000)),
    ],
    ids=["empty", "one-start", "brace", "dense", "front", "tiny-entries", "json", "html", "noise"],
)
def test_hostile_documents_stay_correct_and_linear(
    data: bytes, fresh_memo: Callable[[int], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of starts, starts only, one huge piece: the twin reads back, and the work is
    linear (a bounded number of pieces; zlib is given each byte at most three times: once as
    its piece, twice as a window), so no document makes it pathologically slow."""
    given: list[int] = []
    real = compress._deflate

    def measured(piece: bytes, window: bytes) -> bytes:
        given.append(len(piece) + len(window))
        return real(piece, window)

    monkeypatch.setattr(compress, "_deflate", measured)
    twin = gzip_twin(data)
    assert gzip.decompress(twin) == data
    # Each piece compressed once at most (equal pieces with equal windows: once in all).
    assert len(given) <= len(compress.starts(data)) <= len(data) // 1024 + 65
    assert sum(given) <= 3 * len(data)
    # Near one stream: a piece costs its block's start and a sync flush, a few dozen bytes.
    pieces = len(compress.starts(data))
    assert len(twin) <= 1.05 * len(gzip.compress(data, 1, mtime=0)) + 32 * pieces + 64


# -- Outputs: compressed at once, written when told -----------------------------------------


def _signalling(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An event set once a twin has been compressed (by a thread of Outputs)."""
    done = threading.Event()
    real = publish.gzip_twin

    def twin(data: bytes) -> bytes:
        made = real(data)
        done.set()
        return made

    monkeypatch.setattr(publish, "gzip_twin", twin)
    return done


def test_outputs_compress_at_once_and_write_only_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = _signalling(monkeypatch)
    path = tmp_path / "f" / "atom.xml"
    with Outputs() as outputs:
        outputs.add(path, b"<feed/>" * 1000)
        assert done.wait(30), "the twin is compressed before write() is called"
        assert not path.exists() and not twin_path(path).exists()
        assert outputs.write() == [path]
    assert path.read_bytes() == b"<feed/>" * 1000
    assert twin_path(path).read_bytes() == gzip_twin(b"<feed/>" * 1000)


def test_outputs_compressed_already_write_nothing_when_the_caller_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = _signalling(monkeypatch)
    threads = threading.active_count()
    with pytest.raises(RuntimeError, match="render failed"), Outputs() as outputs:
        outputs.add(tmp_path / "atom.xml", b"<feed/>")
        assert done.wait(30)
        raise RuntimeError("render failed")
    assert threading.active_count() == threads
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["compress", "write"])
def test_an_error_in_a_files_thread_is_raised_in_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A twin that cannot be made, a file that cannot be written: ``write`` raises it (the
    build turns it into its one-line error), no thread is left, the old file stays whole."""
    bad, good = tmp_path / "rss.xml", tmp_path / "atom.xml"
    write_output(bad, b"old")
    if where == "compress":
        real_twin = publish.gzip_twin

        def twin(data: bytes) -> bytes:
            if data == b"new rss":
                raise MemoryError("no room for the twin")
            return real_twin(data)

        monkeypatch.setattr(publish, "gzip_twin", twin)
        expected: type[BaseException] = MemoryError
    else:
        real_write = publish.write_atomic

        def write(target: Path, data: bytes) -> None:
            if target == bad:
                raise PublishError(f"cannot write {target}: disk full")
            real_write(target, data)

        monkeypatch.setattr(publish, "write_atomic", write)
        expected = PublishError
    threads = threading.active_count()
    with pytest.raises(expected), Outputs() as outputs:
        outputs.add(good, b"new atom")
        outputs.add(bad, b"new rss")
        outputs.write()
    assert threading.active_count() == threads
    assert bad.read_bytes() == b"old"
    assert gzip.decompress(twin_path(bad).read_bytes()) in (b"old", b"new rss")
