"""Precompressed twins: every file of OUT has a byte-stable ``.gz`` beside it, written with
it, only when it changed, and removed with it."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import threading
from pathlib import Path

import pytest

from feedbridge import publish
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


def test_a_twin_left_by_a_build_killed_between_its_writes_is_mended(tmp_path: Path) -> None:
    """Killed after the twin of the new bytes and before the file: a later build that wants
    the old bytes back finds the file unchanged, and its twin must be made its twin again."""
    path = tmp_path / "feed" / "atom.xml"
    write_output(path, b"<feed>old</feed>")
    publish.write_atomic(twin_path(path), gzip_twin(b"<feed>new</feed>"))  # the killed build
    assert not write_output(path, b"<feed>old</feed>")
    assert twin_path(path).read_bytes() == gzip_twin(b"<feed>old</feed>")
