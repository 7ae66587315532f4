"""Bytes a reader downloads per poll (plain, gzip, 304) and what the ``.gz`` twins cost a build.

Bytes per poll: builds the real corpus (``../shared/corpus/real``) and a generated archive,
serves OUT with ``--serve``'s server (WhiteNoise; nginx sends the same bodies) and counts every
byte of the response on the wire, headers included, for each feed document: a plain GET, a GET
with ``Accept-Encoding: gzip``, and a conditional GET answered 304.

Twin cost: cold builds of the generated archive, in process, alternating builds with twins and
builds whose writer skips them (median of ``--runs`` each); and the bytes the twins add to OUT.

    python benchmarks/push.py                      # 1,000 generated dumps
    python benchmarks/push.py --size 10000 --runs 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from corpus import generate  # noqa: E402
from scale import daemon_work  # noqa: E402

from feedbridge import build as build_module  # noqa: E402
from feedbridge import publish  # noqa: E402
from feedbridge.app import run_build  # noqa: E402
from feedbridge.compress import GZIP_SUFFIX  # noqa: E402
from feedbridge.config import Config  # noqa: E402
from feedbridge.publish import write_if_changed  # noqa: E402
from feedbridge.serve import Server  # noqa: E402

BASE_URL = "https://feeds.example.org/"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SHARED = Path(os.environ.get("FEEDBRIDGE_SHARED", HERE.parent.parent / "shared"))
DOCUMENTS = ("atom.xml", "rss.xml", "feed.json")


def wire_bytes(port: int, path: str, headers: dict[str, str]) -> tuple[int, int, dict[str, str]]:
    """(status, bytes received, response headers) of one GET, headers and body counted."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    return int(head[0].split()[1]), len(data), fields


def polls(out: Path) -> dict[str, list[int]]:
    """Bytes per poll of every feed document: plain, gzip, 304."""
    server = Server(out, "127.0.0.1", 0)
    server.start()
    sizes: dict[str, list[int]] = {"plain": [], "gzip": [], "304": []}
    try:
        for feed in sorted(p for p in out.iterdir() if p.is_dir()):
            for name in DOCUMENTS:
                path = f"/{feed.name}/{name}"
                status, plain, _ = wire_bytes(server.port, path, {})
                assert status == 200
                status, zipped, zfields = wire_bytes(server.port, path, {"Accept-Encoding": "gzip"})
                assert status == 200 and zfields.get("content-encoding") == "gzip"
                status, not_modified, _ = wire_bytes(
                    server.port,
                    path,
                    {"Accept-Encoding": "gzip", "If-None-Match": zfields["etag"]},
                )
                assert status == 304
                sizes["plain"].append(plain)
                sizes["gzip"].append(zipped)
                sizes["304"].append(not_modified)
    finally:
        server.close()
    return sizes


class Twins:
    """Builds with or without twins (the writer swapped), timing every compression."""

    def __init__(self) -> None:
        self.compress_s = 0.0
        self._twin = publish.gzip_twin

    def _timed(self, data: bytes) -> bytes:
        started = time.thread_time()  # CPU time: compressing runs in a thread of its own
        try:
            return self._twin(data)
        finally:
            self.compress_s += time.thread_time() - started

    def __call__(self, on: bool) -> Twins:
        self.on = on
        return self

    def __enter__(self) -> None:
        publish.gzip_twin = self._timed  # type: ignore[assignment]
        if not self.on:
            build_module.write_output = write_if_changed  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        publish.gzip_twin = self._twin  # type: ignore[assignment]
        build_module.write_output = publish.write_output  # type: ignore[assignment]


def cold_build(dumps: Path, work: Path, twins: Twins, on: bool) -> float:
    out, state = work / "out", work / "state"
    shutil.rmtree(work, ignore_errors=True)
    with twins(on):
        started = time.perf_counter()
        run_build(Config(), dumps=dumps, out=out, base_url=BASE_URL, state_dir=state, now=NOW)
        return time.perf_counter() - started


def out_bytes(out: Path) -> tuple[int, int]:
    files = [p for p in out.rglob("*") if p.is_file()]
    twins = sum(p.stat().st_size for p in files if p.name.endswith(GZIP_SUFFIX))
    return sum(p.stat().st_size for p in files) - twins, twins


def report_polls(label: str, sizes: dict[str, list[int]]) -> None:
    med = {k: statistics.median(v) for k, v in sizes.items()}
    tot = {k: sum(v) for k, v in sizes.items()}
    print(
        f"{label}: {len(sizes['plain'])} documents; median bytes per poll: "
        f"plain {med['plain']:,.0f}, gzip {med['gzip']:,.0f}, 304 {med['304']:,.0f}; "
        f"all documents once: plain {tot['plain']:,}, gzip {tot['gzip']:,} "
        f"({tot['plain'] / tot['gzip']:.2f}x), 304 {tot['304']:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="feedbridge-push-") as tmp:
        base = Path(tmp)
        os.environ["XDG_CACHE_HOME"] = str(base / "cache")
        real = base / "real"
        shutil.copytree(SHARED / "corpus" / "real", real)
        run_build(
            Config(), dumps=real, out=base / "real-out", base_url=BASE_URL, state_dir=None, now=NOW
        )
        report_polls("real corpus", polls(base / "real-out"))
        dumps = base / "dumps"
        generate(dumps, args.size)
        times: dict[bool, list[float]] = {True: [], False: []}
        twins = Twins()
        cold_build(dumps, base / "warm", twins, True)  # page cache, imports
        twins.compress_s = 0.0
        for _ in range(args.runs):
            for on in (True, False):
                times[on].append(cold_build(dumps, base / f"build-{on}", twins, on))
        compress_ms = twins.compress_s / args.runs * 1000
        plain, twin_bytes = out_bytes(base / "build-True" / "out")
        report_polls(f"generated {args.size:,} dumps", polls(base / "build-True" / "out"))
        with_twins = statistics.median(times[True]) * 1000
        without = statistics.median(times[False]) * 1000
        print(
            f"cold build of {args.size:,} dumps, median of {args.runs}: with twins "
            f"{with_twins:,.0f} ms, without {without:,.0f} ms (twins +{with_twins - without:,.0f} "
            f"ms); gzip CPU time per build {compress_ms:,.0f} ms; "
            f"OUT {plain:,} bytes + twins {twin_bytes:,} bytes"
        )
        work: dict[bool, list[float]] = {True: [], False: []}
        for n in range(args.runs):
            for on in (True, False):
                folder = base / f"daemon-{on}"
                with twins(on):
                    sample = daemon_work(dumps, folder / "out", folder / f"state{n}", 3)
                work[on].append(sample.seconds * 1000)
        print(
            f"daemon, one new dump (work, median): with twins {statistics.median(work[True]):.1f} "
            f"ms, without {statistics.median(work[False]):.1f} ms"
        )


if __name__ == "__main__":
    main()
