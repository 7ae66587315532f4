"""The dumps that once crashed a build (or passed ``check`` while crashing ``build``): a build
publishes everything else and rejects them as ``check`` does, with the same path and line."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from feedbridge.cli import cli

from .helpers import CORPUS_MTIME_NS, build

GOOD = "<!--1641833943000-->\n[Good](https://a.example/good)\n------\n\n<p>fine</p>\n"
HOSTILE = {
    # OverflowError out of the date fallbacks
    "calendar-start.md": "[t](https://a.example/1)\n------\n日期：0001-01-01T00:00:00+01:00\n\nx",
    "calendar-end.md": (
        "<!--NaN-->\n[t](https://a.example/2)\n------\n\n"
        '<time datetime="9999-12-31T23:59:59-05:00">'
    ),
    # ValueError out of urlsplit
    "ipv6.md": "<!--1641833943000-->\n[t](http://[::1/x)\n------\n\nx",
    # IndexError on the 2,048-byte head a scan reads (check, reading the whole, accepted it)
    "long-title.md": (
        "<!--NaN-->\n[" + "x" * 1974 + "](https://a.example/3)\n------\n"
        "日期：Thu, 02 Jul 2020 17:14:14 +0000\n\nbody"
    ),
    # a rule line the head cuts to "---": the head accepted what the whole file rejects
    "cut-rule.md": "<!--NaN-->\n[" + "y" * 1990 + "](https://a.example/4)\n---" + "-x" * 40,
    # hosts that must not be published
    "host-gt.md": "<!--1641833943000-->\n[t](http://a>b/)\n------\n\nx",
    "host-idna.md": "<!--1641833943000-->\n[t](http://a℀b/)\n------\n\nx",
    # once hung every build (cubic backtracking): a rejection, and an epoch that is no number
    "epoch-spaces.md": "<!--" + " " * 20_000 + "x\n[t](https://a.example/5)\n------\n\nx",
    "epoch-spaces-closed.md": "<!--" + " " * 20_000 + "x-->\n[t](https://a.example/6)\n---\n",
}


def test_build_and_check_give_the_same_verdicts_on_hostile_dumps(tmp_path: Path) -> None:
    source = tmp_path / "dumps" / "src"
    source.mkdir(parents=True)
    for name, text in {"good.md": GOOD, **HOSTILE}.items():
        (source / name).write_text(text, encoding="utf-8")
        os.utime(source / name, ns=(CORPUS_MTIME_NS, CORPUS_MTIME_NS))
    report = build(tmp_path / "dumps", tmp_path / "out")
    result = CliRunner().invoke(cli, ["check", "--dumps", str(tmp_path / "dumps")])
    assert result.exit_code == 1, result.output
    checked = {line for line in result.stdout.splitlines() if line.startswith("rejected: ")}
    assert {f"rejected: {r}" for r in report.rejected} == checked
    assert {Path(r.path).name for r in report.rejected} == {
        "ipv6.md", "cut-rule.md", "host-gt.md", "host-idna.md", "epoch-spaces.md",
    }  # fmt: skip
    atom = (tmp_path / "out" / "src" / "atom.xml").read_text(encoding="utf-8")
    for published in ("good", "1", "2", "3", "6"):
        assert f"https://a.example/{published}<" in atom, published
