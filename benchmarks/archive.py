"""Archive benchmark: a first build with RFC 5005 archives (every body read, cleaned, rendered),
beside the same build without archives and Hugo rendering the same articles, in one run.

Whole processes, page cache warm (the generated files are read once before the timed runs);
wall time and peak RSS from ``wait4`` (the build's own process) and the largest of its
workers.  Then, in process as the daemon does it (index open, one path from a file event),
the work for one new dump: dated one second after the newest, and dated now.  Either way the
feed's files are rewritten and its oldest entry moves onto the newest archive page.

    python benchmarks/archive.py --count 20000
    python benchmarks/archive.py --count 100000 --hugo
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from corpus import generate  # noqa: E402
from scale import BASE_URL, build_cmd, machine  # noqa: E402


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    child_mb: float = float("nan")


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) not in (0, 1) or "Traceback" in err:
        raise SystemExit(f"{cmd} failed: {err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN: the largest process waited for so far, the build's workers included.
    largest = after / 1024 if after > before else usage.ru_maxrss / 1024
    return Sample(elapsed, usage.ru_maxrss / 1024, largest)


def warm(dumps: Path) -> None:
    for folder in dumps.iterdir():
        for f in os.scandir(folder):
            with open(f.path, "rb") as fh:  # noqa: PTH123
                fh.read()


def hugo_site(dumps: Path, site: Path) -> None:
    """The same articles as a Hugo site: one page each, with its title, date and body HTML,
    one section per source (Hugo renders a page per article and an RSS feed per section)."""
    from feedbridge.dump import parse_dump
    from feedbridge.errors import DumpError

    (site / "layouts" / "_default").mkdir(parents=True, exist_ok=True)
    (site / "config.toml").write_text(
        f'baseURL = "{BASE_URL}"\ntitle = "bench"\n'
        "[markup.goldmark.renderer]\nunsafe = true\n"
        "[pagination]\npagerSize = 50\n"
    )
    layouts = site / "layouts" / "_default"
    (layouts / "single.html").write_text(
        "<!doctype html><title>{{ .Title }}</title><h1>{{ .Title }}</h1>{{ .Content }}\n"
    )
    (layouts / "list.html").write_text(
        "<!doctype html><title>{{ .Title }}</title>"
        "{{ range .Paginator.Pages }}<a href='{{ .RelPermalink }}'>{{ .Title }}</a>{{ end }}\n"
    )
    for folder in sorted(dumps.iterdir()):
        section = site / "content" / folder.name.lower() / folder.name
        section.mkdir(parents=True, exist_ok=True)
        for f in os.scandir(folder):
            mtime = datetime.fromtimestamp(f.stat().st_mtime, UTC)
            try:
                d = parse_dump(Path(f.path).read_bytes(), path=f.path, mtime=mtime)
            except DumpError:
                continue
            title = d.title.replace("\\", "\\\\").replace('"', '\\"')
            (section / f.name).write_text(
                f'+++\ntitle = "{title}"\ndate = {d.published:%Y-%m-%dT%H:%M:%SZ}\n+++\n\n'
                f"{d.body or ''}\n",
                encoding="utf-8",
            )


def new_dump(dumps: Path, n: int, when: datetime) -> str:
    name = f"bench-archive-{n}.md"
    path = dumps / "voa" / name
    path.write_text(
        f"<!--{int(when.timestamp()) * 1000}-->\n"
        f"[Archive benchmark {n}](https://www.voachinese.com/a/archive-bench-{n}.html)"
        f"\n------\n\n<p>new dump {n}</p>\n",
        encoding="utf-8",
    )
    return f"voa/{name}"


def daemon_work(dumps: Path, out: Path, state: Path, runs: int) -> dict[str, float]:
    """Median work for one new dump, in process as the daemon does it."""
    from feedbridge.app import open_builder
    from feedbridge.config import Config
    from feedbridge.scan import list_dumps

    newest = 0
    for rel in list_dumps(dumps, "voa", "*.md"):
        with (dumps / rel).open("rb") as fh:
            head = fh.readline().strip()
        if head.startswith(b"<!--") and head[4:-3].isdigit():
            newest = max(newest, int(head[4:-3]) // 1000)
    times: dict[str, list[float]] = {"newer than all others": [], "dated now": []}
    # parallel: the first build that sets the index up uses the worker processes, as the
    # daemon's first build does; a build of one path never forks.
    with open_builder(
        Config(), dumps=dumps, out=out, base_url=BASE_URL, state_dir=state, parallel=True
    ) as (builder, _):
        now = datetime.now(UTC)
        builder.build(now=now)
        n = 0
        for kind, samples in times.items():  # a second after the newest; then dated now
            for i in range(runs):
                n += 1
                at = datetime.fromtimestamp(newest + n, UTC) if kind != "dated now" else now
                rel = new_dump(dumps, n, at + timedelta(seconds=i))
                started = time.perf_counter()
                builder.build(now=now + timedelta(seconds=runs), paths=[rel])
                samples.append(time.perf_counter() - started)
    for path in (dumps / "voa").glob("bench-archive-*.md"):
        path.unlink()  # the generated archive stays as generated, for the next run
    return {kind: statistics.median(t) for kind, t in times.items()}


def cold_builds(dumps: Path, work: Path, runs: int) -> dict[str, str]:
    """First builds with and without archives, alternated."""
    rows: dict[str, str] = {}
    off = work / "off.toml"
    off.write_text("archive = false\n")
    for _ in range(runs):
        for label, extra in (("first build, archives", []), ("first build, no archives", [off])):
            out, state = work / "out", work / "state"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)
            s = run(build_cmd(dumps, out, state, *extra))
            rows[label] = (
                f"{s.seconds:,.1f} s, {s.rss_mb:.0f} MB (largest process {s.child_mb:.0f} MB)"
            )
            print(label, rows[label], flush=True)
    return rows


def hugo_row(dumps: Path, work: Path) -> tuple[str, str]:
    hugo = shutil.which("hugo")
    if hugo is None:
        raise SystemExit("hugo is not installed (Debian package 'hugo')")
    site = work / f"hugo-{dumps.name.removeprefix('dumps-')}"
    if not site.exists():
        hugo_site(dumps, site)
    os.sync()
    shutil.rmtree(site / "public", ignore_errors=True)
    # Hugo's heap grows with the site (4.5 GB at 20,000 articles): a soft limit of 14 GiB keeps
    # it from taking this shared 24 GiB machine down at 100,000 (Go collects more often instead).
    env = {**os.environ, "GOMEMLIMIT": os.environ.get("GOMEMLIMIT", "14GiB")}
    s = run([hugo, "--quiet"], cwd=site, env=env)
    version = subprocess.run([hugo, "version"], capture_output=True, text=True, check=False)
    label = f"Hugo ({version.stdout.split()[1] if version.stdout else '?'}), same articles"
    return label, f"{s.seconds:,.1f} s, {s.rss_mb:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1, help="cold builds of each kind")
    parser.add_argument("--hugo", action="store_true", help="also time Hugo on the same articles")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--daemon-runs", type=int, default=15, help="new dumps of each kind")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="feedbridge-archive-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    compileall.compile_dir(HERE.parent / "feedbridge", quiet=1)
    dumps = work / f"dumps-{args.count}"
    if not dumps.exists():
        generate(dumps, args.count, seed=args.count)
    os.sync()
    warm(dumps)
    print(f"machine: {machine()}")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {args.count:,} dumps, page cache warm\n")
    rows = cold_builds(dumps, work, args.runs)
    out, state = work / "out", work / "state"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    run(build_cmd(dumps, out, state))
    s = run(build_cmd(dumps, out, state))
    rows["unchanged rebuild, archives"] = f"{s.seconds * 1000:,.0f} ms, {s.rss_mb:.0f} MB"
    print("unchanged", rows["unchanged rebuild, archives"], flush=True)
    for kind, seconds in daemon_work(dumps, out, state, args.daemon_runs).items():
        rows[f"daemon: one new dump ({kind}), work"] = f"{seconds * 1000:,.1f} ms"
        print(kind, rows[f"daemon: one new dump ({kind}), work"], flush=True)
    pages = sum(1 for _ in out.glob("*/archive/*.xml"))
    largest = max((p.stat().st_size for p in out.glob("*/archive/*")), default=0)
    rows["archive pages (Atom)"] = f"{pages:,}, largest document {largest / 2**20:.2f} MiB"
    if args.hugo:
        label, cell = hugo_row(dumps, work)
        rows[label] = cell
        print(label, cell, flush=True)
    print(f"\n| measurement | {args.count:,} dumps |\n|---|---|")
    for label, cell in rows.items():
        print(f"| {label} | {cell} |")
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
