"""Coverage-guided fuzzing of the two functions that read untrusted input, with atheris.

    pip install -e '.[test,fuzz]'
    python benchmarks/fuzz.py dump --seconds 300     # parse_dump
    python benchmarks/fuzz.py html --seconds 300     # content.clean_html

Targets and what they must hold, for any input:

- ``dump``: the (unguarded) parser raises nothing but DumpError; the head a scan reads agrees
  with the whole file or defers to it; ``plain_head`` agrees with the parser; an accepted
  URL is publishable (the invariants of ``tests/test_dump_fuzz.py``, shared with it).
- ``html``: ``clean_html`` never raises, and its HTML, read back with BeautifulSoup's
  ``html.parser``, holds only elements and attributes of an allow-list written here (not
  content.py's own), URLs only of http(s) (and mailto for links), nothing that can run.

The seed corpus is kept in the repository (``benchmarks/fuzz-corpus/{dump,html}``); new inputs
go to a scratch folder (``--work``, default a fresh temporary one) so that the repository keeps
only what a human chose to add (``--merge`` minimises a scratch folder into the seeds).  A
finding is written as ``crash-*`` in the current folder; turn it into a named regression test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORPUS = HERE / "fuzz-corpus"
sys.path.insert(0, str(REPO))

import atheris  # noqa: E402

with atheris.instrument_imports(include=["feedbridge"]):
    from feedbridge.content import clean_html

from bs4 import BeautifulSoup  # noqa: E402

from tests.test_dump_fuzz import HEAD_BYTES, check_all  # noqa: E402  (the tests' invariants)

MTIME = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
BASE_URL = "https://www.example.org/news/a.html"

#: What a cleaned body may hold.  Written apart from content.py, on purpose: the fuzzer checks
#: the cleaner's output against what is safe, not against what the cleaner meant to allow.
SAFE_TAGS = frozenset(
    {
        "a", "abbr", "acronym", "address", "article", "aside", "audio", "b", "bdi", "bdo", "big",
        "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "data", "dd",
        "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "footer", "h1",
        "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li",
        "mark", "nav", "ol", "p", "picture", "pre", "q", "rp", "rt", "rtc", "ruby", "s", "samp",
        "section", "small", "source", "span", "strike", "strong", "sub", "summary", "sup",
        "table", "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var",
        "video", "wbr",
    }
)  # fmt: skip
SAFE_ATTRIBUTES = frozenset(
    {
        "href", "hreflang", "title", "src", "srcset", "sizes", "alt", "width", "height",
        "poster", "controls", "type", "media", "cite", "datetime", "start", "colspan", "rowspan",
        "headers", "scope", "span", "abbr", "rel", "lang", "dir", "open", "align", "valign",
        "char", "charoff", "summary",
    }
)  # fmt: skip
URL_ATTRIBUTES = frozenset({"href", "src", "poster", "cite"})
WEB = ("http", "https")


def check_dump(data: bytes) -> None:
    ends = [i for i, b in enumerate(data[: HEAD_BYTES + 64]) if b == 0x0A][:6]
    check_all(data, [c for e in ends for c in (e, e + 1, e + 2)])


def _check_url(tag: str, attr: str, url: str) -> None:
    schemes = (*WEB, "mailto") if (tag, attr) == ("a", "href") else WEB
    scheme = urlsplit(url).scheme.lower()
    assert scheme in schemes, (tag, attr, url)
    assert url.isascii() and not any(c.isspace() for c in url), (tag, attr, url)


def check_html(data: bytes) -> None:
    body = data.decode("utf-8", "replace")  # seeds are real bodies: read them as such
    content = clean_html(body, base_url=BASE_URL)
    soup = BeautifulSoup(content.html, "html.parser")
    for el in soup.find_all(True):
        assert el.name in SAFE_TAGS, (el.name, content.html)
        for attr, value in el.attrs.items():
            assert attr in SAFE_ATTRIBUTES, (el.name, attr, content.html)
            text = " ".join(value) if isinstance(value, list) else value
            if attr in URL_ATTRIBUTES:
                _check_url(el.name, attr, text)
            elif attr == "srcset":
                for candidate in text.split(", "):
                    _check_url(el.name, attr, candidate.split(" ")[0])
    if content.image is not None:
        _check_url("img", "src", content.image)


TARGETS: dict[str, Callable[[bytes], None]] = {"dump": check_dump, "html": check_html}
MAX_LEN = {"dump": 8192, "html": 16384}


def _relauncher(target: str, work: Path) -> str:
    """An executable that runs this script again for ``target``: libFuzzer's ``-merge``
    starts its own command line (argv[0]) as a child process."""
    script = work.parent / f"{work.name}.run"
    script.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).resolve()}" {target} --child "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=300, help="how long to fuzz")
    parser.add_argument("--work", type=Path, help="scratch corpus folder (default: temporary)")
    parser.add_argument("--merge", action="store_true", help="minimise --work into the seeds")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, libfuzzer = parser.parse_known_args()  # the rest goes to libFuzzer, e.g. -runs=1000
    if args.child:  # started by libFuzzer itself (see _relauncher): its flags only
        atheris.Setup([sys.argv[0], *libfuzzer], TARGETS[args.target])
        atheris.Fuzz()
        return
    seeds = CORPUS / args.target
    work = args.work or Path(tempfile.mkdtemp(prefix=f"feedbridge-fuzz-{args.target}-"))
    work.mkdir(parents=True, exist_ok=True)
    argv0 = sys.argv[0]
    if args.merge:
        argv0 = _relauncher(args.target, work)
        flags = ["-merge=1", str(seeds), str(work)]
    else:
        flags = [str(work), str(seeds), f"-max_total_time={args.seconds}"]
    flags += [f"-max_len={MAX_LEN[args.target]}", "-timeout=10", "-rss_limit_mb=2048"]
    print(f"fuzzing {args.target}: new inputs in {work}", file=sys.stderr)
    atheris.Setup([argv0, *flags, *libfuzzer], TARGETS[args.target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
