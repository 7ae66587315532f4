"""Scale benchmark: whole ``feedbridge build`` processes over generated archives.

For each size it measures, as separate processes with a warm page cache, the median of
``--runs`` runs of: a first (cold) build, a rebuild with nothing changed, a build after one new
dump, after one edited dump and after one deleted dump, each with its peak RSS; a naive baseline
that reads and parses every body on every build; and, in process, the work the daemon does for
one new dump (one file read plus re-rendering the affected feed).

    python benchmarks/scale.py                     # 1k, 10k and 100k dumps
    python benchmarks/scale.py --sizes 1000 --runs 5
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from corpus import generate  # noqa: E402

BASE_URL = "https://feeds.example.org/"


@dataclass
class Sample:
    seconds: float
    rss_mb: float


def run(cmd: list[str]) -> Sample:
    """One process: wall time and peak RSS (from wait4, so only that process counts)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd} exited {proc.returncode}")
    return Sample(elapsed, usage.ru_maxrss / 1024)


def build_cmd(dumps: Path, out: Path, state: Path, config: Path | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "feedbridge",
        "-q",
        "build",
        *(["--config", str(config)] if config else []),
        "--dumps",
        str(dumps),
        "--out",
        str(out),
        "--base-url",
        BASE_URL,
        "--state",
        str(state),
    ]


NAIVE = r"""
import os, sys
from datetime import UTC, datetime
from pathlib import Path
from feedbridge.content import clean_html
from feedbridge.dump import parse_dump
from feedbridge.errors import DumpError
from feedbridge.model import Entry, FeedSpec
from feedbridge.config import feed_urls
from feedbridge.render import render_atom, render_json, render_rss
root, out = Path(sys.argv[1]), Path(sys.argv[2])
for source in sorted(p.name for p in root.iterdir() if p.is_dir()):
    dumps = []
    for f in os.scandir(root / source):
        data = open(f.path, "rb").read()
        mtime = datetime.fromtimestamp(f.stat().st_mtime, UTC)
        try:
            dumps.append(parse_dump(data, path=f.path, mtime=mtime))
        except DumpError:
            pass
    dumps.sort(key=lambda d: (d.published, d.path), reverse=True)
    spec = FeedSpec(name=source, title=source, sources=(source,))
    urls = feed_urls(spec, "https://feeds.example.org/")
    entries = [Entry(d.id, d.url, d.title, d.published, source,
                     clean_html(d.body or "", base_url=d.url)) for d in dumps[:50]]
    (out / source).mkdir(parents=True, exist_ok=True)
    for name, render in (("atom.xml", render_atom), ("rss.xml", render_rss),
                         ("feed.json", render_json)):
        (out / source / name).write_bytes(render(spec, entries, urls))
"""


def median(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.seconds for s in samples), statistics.median(s.rss_mb for s in samples)
    )


def new_dump(dumps: Path, n: int) -> Path:
    path = dumps / "voa" / f"bench-new-{n}.md"
    millis = int(time.time() * 1000)
    path.write_text(
        f"<!--{millis}-->\n[Benchmark {n}](https://www.voachinese.com/a/bench-{n}.html)"
        f"\n------\n\n<p>new dump {n}</p>\n",
        encoding="utf-8",
    )
    return path


def newest(dumps: Path, source: str = "voa") -> Path:
    best: tuple[int, str] = (0, "")
    for f in os.scandir(dumps / source):
        with Path(f.path).open("rb") as fh:
            head = fh.readline().strip()
        if head.startswith(b"<!--") and head[4:-3].isdigit():
            best = max(best, (int(head[4:-3]), f.path))
    return Path(best[1])


def bench_size(count: int, work: Path, runs: int) -> dict[str, Sample]:
    dumps = work / f"dumps-{count}"
    if not dumps.exists():
        print(f"generating {count} dumps in {dumps} ...", file=sys.stderr)
        generate(dumps, count, seed=count)
    else:  # leftovers of an earlier run
        for p in (dumps / "voa").glob("bench-new-*.md"):
            p.unlink()
    out, state = work / f"out-{count}", work / f"state-{count}"
    results: dict[str, Sample] = {}
    # The feeds alone, as issue #4 measures them; archives (issue 10) are benchmarks/archive.py's.
    config = work / "feeds-only.toml"
    config.write_text("archive = false\n")
    # Page cache warm, as the issue asks: generated files written back to disk (so writeback
    # does not compete with the timed runs), then read once by an untimed build.
    os.sync()
    shutil.rmtree(state, ignore_errors=True)
    run(build_cmd(dumps, out, state, config))

    firsts = []
    for _ in range(runs):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        firsts.append(run(build_cmd(dumps, out, state, config)))
    results["first build"] = median(firsts)
    results["unchanged rebuild"] = median(
        [run(build_cmd(dumps, out, state, config)) for _ in range(runs)]
    )

    samples = []
    for n in range(runs):
        new_dump(dumps, n)
        samples.append(run(build_cmd(dumps, out, state, config)))
    results["one new dump"] = median(samples)

    samples = []
    for n in range(runs):
        target = newest(dumps)
        text = target.read_text("utf-8")
        target.write_text(text.replace("](", f" (edit {n})](", 1), "utf-8")
        samples.append(run(build_cmd(dumps, out, state, config)))
    results["one edited dump"] = median(samples)

    samples = []
    for _ in range(runs):
        newest(dumps).unlink()
        samples.append(run(build_cmd(dumps, out, state, config)))
    results["one deleted dump"] = median(samples)

    naive_out = work / f"naive-{count}"
    naive = [
        run([sys.executable, "-c", NAIVE, str(dumps), str(naive_out)])
        for _ in range(max(3, runs // 2 if count >= 100_000 else runs))
    ]
    results["naive: parse every body"] = median(naive)
    results["daemon: one new dump (work)"] = daemon_work(dumps, out, state, runs)
    # the archive changed (edits, deletions): regenerate it next time
    shutil.rmtree(dumps)
    shutil.rmtree(naive_out, ignore_errors=True)
    return results


def daemon_work(dumps: Path, out: Path, state: Path, runs: int) -> Sample:
    """In process, as the daemon does it: the index open, one path from a file event."""
    from feedbridge.app import open_builder
    from feedbridge.config import Config

    times = []
    with open_builder(
        Config(archive=False),
        dumps=dumps,
        out=out,
        base_url=BASE_URL,
        state_dir=state,
        parallel=False,
    ) as (builder, _):
        builder.build(now=datetime.now(UTC))
        for n in range(runs):
            path = new_dump(dumps, 1000 + n)
            started = time.perf_counter()
            report = builder.build(now=datetime.now(UTC), paths=[f"voa/{path.name}"])
            times.append(time.perf_counter() - started)
            assert any(f.name == "voa" and f.written for f in report.feeds)
    return Sample(statistics.median(times), float("nan"))  # in process: no RSS of its own


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )


def _cell(sample: Sample) -> str:
    ms = sample.seconds * 1000
    time_text = f"{ms:,.1f} ms" if ms < 100 else f"{ms:,.0f} ms"
    return time_text if sample.rss_mb != sample.rss_mb else f"{time_text}, {sample.rss_mb:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder for generated archives and outputs (default: a temp dir)",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="feedbridge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    # Measure feedbridge as installed: with its bytecode compiled (pip does that on install;
    # under PYTHONDONTWRITEBYTECODE an editable checkout would otherwise compile every run).
    compileall.compile_dir(HERE.parent / "feedbridge", quiet=1)
    print(f"machine: {machine()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d}, median of {args.runs} runs, page cache warm\n")
    table: dict[int, dict[str, Sample]] = {}
    for count in args.sizes:
        table[count] = bench_size(count, work, args.runs)
    rows = list(next(iter(table.values())))
    print("| measurement | " + " | ".join(f"{c:,} dumps" for c in table) + " |")
    print("|---|" + "---|" * len(table))
    for row in rows:
        cells = [_cell(table[c][row]) for c in table]
        print(f"| {row} | " + " | ".join(cells) + " |")
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
