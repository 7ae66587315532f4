"""Cleaning benchmark: ``clean_html`` over every body of the real corpus, in process.

Prints the fastest and the median of ``--runs`` passes (CPU time of this process), per body and
for the whole corpus, so a change to the cleaner can be weighed against the build's budget
(cleaning 50 bodies is part of every feed that changed).  On a shared machine the fastest pass
is the steadier number.

    python benchmarks/clean.py                 # 7 passes
    python benchmarks/clean.py --runs 21
    python benchmarks/clean.py --generated 300 # 300 bodies of benchmarks/corpus.py (1-20 KB)
    python benchmarks/clean.py --hostile       # time per element of pathological bodies

``--hostile`` cleans bodies of one construct repeated 25,000 and 100,000 times: the time per
element must stay flat (linear cleaning); before element removal became a rename, 100,000
``<a>`` took 53 s.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

from feedbridge.content import clean_html  # noqa: E402
from feedbridge.dump import parse_dump  # noqa: E402
from feedbridge.errors import DumpError  # noqa: E402

SHARED = Path(os.environ.get("FEEDBRIDGE_SHARED", HERE.parent.parent / "shared"))


def generated(count: int) -> list[tuple[str, str]]:
    """Bodies as ``corpus.py`` writes them (the archives of ``scale.py``), with their URLs."""
    from corpus import HOSTS, SOURCES, body

    rng = random.Random(1)
    return [(body(rng, n), f"{HOSTS[SOURCES[n % len(SOURCES)]]}{n}.html") for n in range(count)]


def bodies(real: Path) -> list[tuple[str, str]]:
    found = []
    for path in sorted(real.rglob("*.md")):
        try:
            dump = parse_dump(path.read_bytes(), path=str(path), mtime=datetime.now(UTC))
        except DumpError:
            continue
        found.append((dump.body or "", dump.url))
    return found


HOSTILE = (
    "<a>", "<a>x</a>", "<p>", "<td>", "<b>", "<script></script>x", "<img src=x>",
    "<noscript><img src=/a.jpg></noscript>", "<div><span></span></div>", "<xmp>",
)  # fmt: skip


def hostile() -> None:
    for construct in HOSTILE:
        per_element = []
        for count in (25_000, 100_000):
            body = construct * count + "end"
            start = time.process_time()
            clean_html(body, base_url="https://x.example/")
            per_element.append((time.process_time() - start) / count * 1e6)
        print(
            f"{construct!r:42} {per_element[0]:6.1f} µs an element at 25k, "
            f"{per_element[1]:6.1f} at 100k"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--generated", type=int, metavar="N", help="N bodies of corpus.py")
    parser.add_argument("--hostile", action="store_true")
    args = parser.parse_args()
    if args.hostile:
        hostile()
        return
    work = generated(args.generated) if args.generated else bodies(SHARED / "corpus" / "real")
    size = sum(len(body) for body, _ in work)
    passes = []
    for _ in range(args.runs):
        start = time.process_time()
        for body, url in work:
            clean_html(body, base_url=url)
        passes.append(time.process_time() - start)
    best, median = min(passes), statistics.median(passes)
    print(
        f"{len(work)} bodies, {size / 1e6:.2f} MB, {args.runs} passes: "
        f"fastest {best * 1e3:.1f} ms ({best / len(work) * 1e3:.3f} ms a body), "
        f"median {median * 1e3:.1f} ms ({median / len(work) * 1e3:.3f} ms a body)"
    )


if __name__ == "__main__":
    main()
