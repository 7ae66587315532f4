"""The byte budget: a feed document over ``max_feed_bytes`` loses the content of its oldest
entries, then its oldest entries, just enough to fit, and stays valid."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbridge.budget import Trim, fit, oldest_first, trimmed
from feedbridge.config import DEFAULT_MAX_FEED_BYTES, parse_config
from feedbridge.errors import ConfigError
from feedbridge.model import Content, Entry, FeedSpec, FeedUrls
from feedbridge.render import render_atom, render_json, render_rss

from .conftest import BASE_URL, SPEC, real_dumps
from .helpers import CORPUS_MTIME_NS, build

KIB = 1024
SPEC_ = FeedSpec(name="long", title="Long", sources=("long",))
URLS = FeedUrls(
    atom=BASE_URL + "long/atom.xml",
    rss=BASE_URL + "long/rss.xml",
    json=BASE_URL + "long/feed.json",
    site=BASE_URL,
)
RENDERERS = {"atom.xml": render_atom, "rss.xml": render_rss, "feed.json": render_json}


def _entries(sizes: list[int]) -> list[Entry]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return [
        Entry(
            id=f"https://x.org/{i}",
            url=f"https://x.org/{i}",
            title=f"Entry {i}",
            published=start - timedelta(hours=i),
            source="long",
            content=Content(html="<p>" + "word & more " * size + "</p>", summary=f"Summary {i}"),
        )
        for i, size in enumerate(sizes)
    ]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=12),
    budget=st.integers(min_value=1500, max_value=40_000),
    fmt=st.sampled_from(sorted(RENDERERS)),
)
def test_fit_takes_the_fewest_steps_that_fit(sizes: list[int], budget: int, fmt: str) -> None:
    entries = _entries(sizes)
    render = RENDERERS[fmt]

    def doc(chosen: object) -> bytes:
        return render(SPEC_, chosen, URLS)  # type: ignore[arg-type]

    data, trim = fit(entries, doc, budget)
    order = oldest_first(entries)
    k = trim.stripped + trim.dropped
    assert data == doc(trimmed(entries, order, k))
    if trim.over:
        assert k == 2 * len(entries) and len(data) > budget
        return
    assert len(data) <= budget
    if k:
        assert len(doc(trimmed(entries, order, k - 1))) > budget, "one step fewer must not fit"


def test_fit_renders_once_when_the_document_fits() -> None:
    calls: list[int] = []

    def doc(chosen: object) -> bytes:
        calls.append(1)
        return render_atom(SPEC_, chosen, URLS)  # type: ignore[arg-type]

    _, trim = fit(_entries([10, 10]), doc, 100_000)
    assert not trim and len(calls) == 1


def test_trimming_goes_oldest_first_and_keeps_the_summary() -> None:
    entries = _entries([100, 100, 100])
    order = oldest_first(entries)
    assert order == [2, 1, 0]
    two = trimmed(entries, order, 2)
    assert [bool(e.content.html) for e in two] == [True, False, False]
    assert [e.content.summary for e in two] == ["Summary 0", "Summary 1", "Summary 2"]
    four = trimmed(entries, order, 4)
    assert [e.id for e in four] == ["https://x.org/0", "https://x.org/1"]
    assert not any(e.content.html for e in four)
    assert str(Trim(stripped=3, dropped=1)) == (
        "content of the 3 oldest entries left out, the 1 oldest entries left out"
    )


# -- the 50 longest real articles, 256 KiB ---------------------------------------------------


@pytest.fixture(scope="module")
def longest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("budget")
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    dumps = base / "dumps"
    (dumps / "long").mkdir(parents=True)
    chosen = sorted(real_dumps(), key=lambda p: (-p.stat().st_size, str(p)))[:50]
    assert len(chosen) == 50
    for p in chosen:
        copy = dumps / "long" / f"{p.parent.name}-{p.name}"
        shutil.copyfile(p, copy)
        os.utime(copy, ns=(CORPUS_MTIME_NS, CORPUS_MTIME_NS))
    unlimited, limited = base / "unlimited", base / "limited"
    big = parse_config({"max_feed_bytes": 100 * 1024 * 1024})
    build(dumps, unlimited, big, state=base / "s1")
    build(dumps, limited, parse_config({"max_feed_bytes": 256 * KIB}), state=base / "s2")
    return dumps, unlimited, limited


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_longest_articles_fit_256_kib(longest: tuple[Path, Path, Path], fmt: str) -> None:
    _, unlimited, limited = longest
    full = (unlimited / "long" / fmt).read_bytes()
    assert len(full) > 256 * KIB, "the test needs a feed over budget"
    assert len((limited / "long" / fmt).read_bytes()) <= 256 * KIB


def test_trimmed_atom_is_valid(longest: tuple[Path, Path, Path]) -> None:
    atom = longest[2] / "long" / "atom.xml"
    if shutil.which("jing") is None:
        pytest.fail("jing is not installed (Debian package 'jing')")
    for args in (["-c", str(SPEC / "atom.rnc")], [str(SPEC / "atom-rules.sch")]):
        result = subprocess.run(
            ["jing", *args, str(atom)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("fmt", ["atom.xml", "rss.xml"])
def test_newest_entries_whole_oldest_keep_summaries(
    longest: tuple[Path, Path, Path], fmt: str
) -> None:
    _, unlimited, limited = longest
    full = feedparser.parse((unlimited / "long" / fmt).read_bytes()).entries
    cut = feedparser.parse((limited / "long" / fmt).read_bytes()).entries
    assert len(full) == 50
    ids = [e.id for e in cut]
    assert ids == [e.id for e in full[: len(cut)]], "only the oldest entries may go"
    whole = [e for e in cut if "content" in e]
    assert whole and whole == cut[: len(whole)], "content goes from the oldest first"
    for got, want in zip(whole, full, strict=False):
        assert got.content[0].value == want.content[0].value
    for got in cut[len(whole) :]:
        assert got.summary, "a stripped entry keeps its summary"


def test_json_feed_trimmed_the_same_way(longest: tuple[Path, Path, Path]) -> None:
    _, unlimited, limited = longest
    full = json.loads((unlimited / "long" / "feed.json").read_bytes())["items"]
    cut = json.loads((limited / "long" / "feed.json").read_bytes())["items"]
    whole = [i for i in cut if i["content_html"]]
    assert whole == full[: len(whole)]
    assert all(i["summary"] for i in cut[len(whole) :])
    assert [i["id"] for i in cut] == [i["id"] for i in full[: len(cut)]]


def test_the_build_says_once_per_feed_what_it_trimmed(
    tmp_path: Path, longest: tuple[Path, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    dumps = longest[0]
    config = parse_config({"max_feed_bytes": 256 * KIB})
    with caplog.at_level(logging.WARNING, logger="feedbridge"):
        build(dumps, tmp_path / "out", config, state=tmp_path / "state")
    said = [r.getMessage() for r in caplog.records if "max_feed_bytes" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith("feed long: over max_feed_bytes 262144: atom.xml: content of the ")
    assert "rss.xml: " in said[0] and "feed.json: " in said[0]


# -- configuration -----------------------------------------------------------------------------


def test_config_budget_defaults_and_per_feed() -> None:
    cfg = parse_config({"max_feed_bytes": 65536, "feeds": {"a": {}, "b": {"max_feed_bytes": 8192}}})
    assert parse_config({}).max_feed_bytes == DEFAULT_MAX_FEED_BYTES
    assert {f.name: f.max_feed_bytes for f in cfg.feeds} == {"a": 65536, "b": 8192}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_feed_bytes": 100}, "max_feed_bytes must be at least 4096"),
        ({"max_feed_bytes": "1M"}, "max_feed_bytes must be an integer, not a string"),
        ({"feeds": {"a": {"max_feed_bytes": 1}}}, "[feeds.a] max_feed_bytes must be at least"),
    ],
)
def test_config_budget_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(data)


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
@pytest.mark.parametrize("share", [0.9, 0.5, 0.1, 0.02])
def test_fit_needs_few_renders(fmt: str, share: float) -> None:
    """Calibrated guesses: a right guess and its neighbour, not a bisection of 2n steps."""
    entries = _entries([(i * 37) % 300 + 50 for i in range(50)])
    calls: list[int] = []

    def doc(chosen: object) -> bytes:
        calls.append(1)
        return RENDERERS[fmt](SPEC_, chosen, URLS)  # type: ignore[arg-type]

    budget = int(len(doc(entries)) * share)
    calls.clear()
    data, trim = fit(entries, doc, budget)
    assert trim and len(data) <= budget
    assert len(calls) <= 6
