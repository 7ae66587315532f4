"""The parser is linear in its input: each line of the grammar filled, up to ``max_bytes``,
with the worst repeating pattern we know for it must parse well within a watchdog.

No timed assertions: a subprocess parses every input of a group and gets a generous
deadline (tens of seconds for what a linear parser does in well under a second per input).
The patterns that once backtracked (``<!--`` and 2,000 spaces took 8 s; ``](http://a/``
repeated took 78 s at 160 KB) would need hours or years at 5 MiB, so they cannot meet it.

Run one group by hand to see its times: ``python -m tests.test_dump_hostile epoch``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from feedbridge.config import DEFAULT_MAX_BYTES
from feedbridge.dump import _parse_dump, plain_head
from feedbridge.errors import DumpError

from .conftest import REPO

MTIME = datetime(2024, 5, 6, tzinfo=UTC)
#: Seconds a whole group may take: linear parsing needs a few on a busy machine.
WATCHDOG = 90
TITLE = "[t](http://a.example/)\n"
RULE = "------\n"


def fill(prefix: str, unit: str, suffix: str = "") -> bytes:
    """``prefix + unit * n + suffix`` as close to ``max_bytes`` as fits."""
    room = DEFAULT_MAX_BYTES - len((prefix + suffix).encode())
    return (prefix + unit * (room // len(unit.encode())) + suffix).encode()


GROUPS: dict[str, dict[str, Callable[[], bytes]]] = {
    "epoch": {
        "spaces then no close": lambda: fill("<!--", " ", "x\n" + TITLE + RULE),
        "spaces then dashes": lambda: fill("<!--", " -", "x\n" + TITLE + RULE),
        "digits": lambda: fill("<!--", "1", "-->\n" + TITLE + RULE),
        "leading zeros": lambda: fill("<!--", "0", "7-->\n" + TITLE + RULE),
        "comment openers": lambda: fill("", "<!--", "\n" + TITLE + RULE),
    },
    "title": {
        "url openers, no close": lambda: fill("[t", "](http://a/", ")x\n" + RULE),
        "url openers with spaces": lambda: fill("[t", "](http://a/ ", ")\n" + RULE),
        "url openers, closed": lambda: fill("[t", "](http://a/", ")\n" + RULE),
        "schemes only": lambda: fill("[t", "](a:", ")\n" + RULE),
        "no scheme": lambda: fill("[t", "](a", ")\n" + RULE),
        "hosts with brackets": lambda: fill("[t", "](http://[", ")\n" + RULE),
        "spaces after opener": lambda: fill("[t](", " ", "x)\n" + RULE),
        "brackets": lambda: fill("[", "[]()", "](http://a/)\n" + RULE),
        "entities": lambda: fill("[", "&amp;", "](http://a/)\n" + RULE),
        "huge numeric reference": lambda: fill("[&#", "1", ";](http://a/)\n" + RULE),
        "huge hex reference": lambda: fill("[&#x", "f", ";](http://a/)\n" + RULE),
        "long host": lambda: fill("[t](http://", "a.", "/)\n" + RULE),
        "long IDNA host": lambda: fill("[t](http://", "例", "/)\n" + RULE),
        "many IDNA labels": lambda: fill("[t](http://", "例.", "/)\n" + RULE),
        "long port": lambda: fill("[t](http://a:", "9", "/)\n" + RULE),
        "non-ASCII path": lambda: fill("[t](http://a/", "中 ", ")\n" + RULE),
        "percent signs": lambda: fill("[t](http://a/", "%", ")\n" + RULE),
        "userinfo": lambda: fill("[t](http://", "u@", "a/)\n" + RULE),
    },
    "rule and date": {
        "dashes": lambda: fill(TITLE, "-", "\n"),
        "dashes then text": lambda: fill(TITLE, "-", "x\n"),
        "date spaces": lambda: fill(TITLE + RULE + "日期：", " ", "x\n"),
        "date digits": lambda: fill(TITLE + RULE + "日期：", "1", "\n"),
        "date words": lambda: fill(TITLE + RULE + "日期：Thu, 02 Jul 2020", " 17:14:14", "\n"),
        "date colons": lambda: fill(TITLE + RULE + "日期", "：", "\n"),
    },
    "body": {
        "italic closers": lambda: fill("<!--NaN-->\n" + TITLE + RULE + "<div><i>", "</i> ", ""),
        "italic openers": lambda: fill("<!--NaN-->\n" + TITLE + RULE, "<div><i>", ""),
        "time tags": lambda: fill("<!--NaN-->\n" + TITLE + RULE, "<time datetime=", ""),
        "time tag quote": lambda: fill("<!--NaN-->\n" + TITLE + RULE + "<time datetime='", "a"),
        "tag openers": lambda: fill("<!--NaN-->\n" + TITLE + RULE + "<div><i>", "<", "</i></div>"),
        "line breaks": lambda: fill("<!--NaN-->\n" + TITLE + RULE, "\r\n"),
        "control characters": lambda: fill("<!--NaN-->\n" + TITLE + RULE, "\x01 "),
        "numeric references": lambda: fill("<!--NaN-->\n" + TITLE + RULE + "<div><i>&#", "9"),
    },
    "plain head": {
        "url openers": lambda: fill("<!--1641833943000-->\n[t", "](http://a/", ")\n" + RULE),
        "url openers, no close": lambda: fill("<!--1641833943000-->\n[t", "](http://a/", "\n-"),
        "long host": lambda: fill("<!--1641833943000-->\n[t](http://", "a", "/)\n" + RULE),
        "title bytes": lambda: fill("<!--1641833943000-->\n[", "中", "](http://a/)\n" + RULE),
    },
}


def parse_group(name: str) -> None:
    """Parse every input of a group as a scan and as a check would; print each as it ends."""
    for label, make in GROUPS[name].items():
        data = make()
        assert len(data) <= DEFAULT_MAX_BYTES, label
        start = time.perf_counter()
        for complete, chunk in ((True, data), (False, data[:2048])):
            plain_head(chunk, complete=complete)
            with contextlib.suppress(DumpError):  # anything else is a bug: let it show
                _parse_dump(chunk, path="p.md", mtime=MTIME, complete=complete)
        print(f"{label}: {time.perf_counter() - start:.3f} s", flush=True)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_parsing_is_linear_at_max_bytes(group: str) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.test_dump_hostile", group],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=WATCHDOG,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        finished = out.splitlines()
        pending = [
            label for label in GROUPS[group] if not any(f.startswith(label + ":") for f in finished)
        ]
        pytest.fail(f"{group}: no answer within {WATCHDOG} s for {pending[0]!r} (done: {finished})")
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == list(GROUPS[group])


if __name__ == "__main__":
    for group in sys.argv[1:]:
        parse_group(group)
