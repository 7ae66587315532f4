"""Latency benchmark for ``feedbridge run``: write 100 dumps one by one into a running daemon
and measure, for each, the time from the end of the write to the feed on disk containing it.

    python benchmarks/latency.py                  # over the bundled example archive
    python benchmarks/latency.py --archive 10000  # over a generated archive of 10,000 dumps
    python benchmarks/latency.py --count 100 --gap 0.2
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import generate  # noqa: E402

EXAMPLES = HERE.parent / "config" / "dumps"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between two dumps")
    parser.add_argument(
        "--archive",
        type=int,
        default=0,
        help="generate an archive of this many dumps (default: the examples)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="feedbridge-latency-"))
    dumps, out, state = work / "dumps", work / "out", work / "state"
    if args.archive:
        generate(dumps, args.archive)
    else:
        shutil.copytree(EXAMPLES, dumps)
    log = (work / "daemon.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feedbridge",
            "run",
            "--dumps",
            str(dumps),
            "--out",
            str(out),
            "--base-url",
            "http://127.0.0.1/",
            "--state",
            str(state),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    feed = out / "voa" / "atom.xml"
    try:
        deadline = time.monotonic() + 300
        while not (state / "status.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start: {(work / 'daemon.log').read_text()}")
            time.sleep(0.05)
        time.sleep(0.5)
        latencies = []
        for n in range(args.count):
            url = f"https://www.voachinese.com/a/latency-{n}.html"
            text = (
                f"<!--{int(time.time() * 1000)}-->\n[Latency {n}]({url})\n------\n\n"
                f"<p>dump {n}</p>\n"
            )
            (dumps / "voa" / f"latency-{n}.md").write_text(text, encoding="utf-8")
            written = time.monotonic()
            while url not in feed.read_text("utf-8"):
                if time.monotonic() - written > 30:
                    raise SystemExit(f"dump {n} never appeared")
                time.sleep(0.002)
            latencies.append(time.monotonic() - written)
            time.sleep(args.gap)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(work)
    ms = [x * 1000 for x in latencies]
    print(
        f"{len(ms)} dumps into a daemon over {args.archive or 'the example'} archive "
        f"({os.cpu_count()} cores)"
    )
    print(
        f"p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 95):.0f} ms, max {max(ms):.0f} ms"
    )


if __name__ == "__main__":
    main()
