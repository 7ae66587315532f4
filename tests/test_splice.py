"""Spliced documents (splice.py): a feed document put together from its entries' kept bytes is
byte for byte the document rendered whole (``memo=None``), whatever the memo holds, for any
entries; and a Builder kept open (the daemon) publishes what a cold build in a new process
publishes, ``.gz`` twins included."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbridge import render as render_module
from feedbridge.app import open_builder, run_build
from feedbridge.build import fit_feed
from feedbridge.config import feed_urls, parse_config
from feedbridge.content import clean_html
from feedbridge.dump import parse_dump
from feedbridge.errors import DumpError
from feedbridge.model import Content, Entry, FeedSpec, History
from feedbridge.render import render_atom, render_json, render_rss
from feedbridge.splice import ATOM_ENTRY, RSS_ITEM, Cut, Fragments, Parts, Slots, cut

from .conftest import BASE_URL, EDGE, REAL
from .helpers import snapshot
from .safety import read_vectors

Render = Callable[..., bytes]
RENDERS: dict[str, Render] = {"atom": render_atom, "rss": render_rss, "json": render_json}
SPEC = FeedSpec("s", "Spliced", ("s",), author="Ann")
URLS = feed_urls(SPEC, BASE_URL)
#: Text that looks like the structure the splice cuts at, or that XML and JSON treat specially.
MARKERS = (
    "<entry>", "</entry>", "<item>", "</item>", "<entry>\n  </entry>", "</item>\n    <item>",
    "]]>", "<![CDATA[", '\n    {\n      "id"', "},\n    {", "\n  ", "\n    ", '"', "&", "<",
    ">", "&amp;", "&lt;", "\\", "\t", "\r", "\n", "\u2028", "\x85", "中文", "\U0001f600",
    '<a title="</item>">x</a>', "<p>", "</p>", "\x0b",
)  # fmt: skip


#: What XML 1.0 cannot hold (lxml refuses it; the dump parser never lets it through).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _outcome(render: Callable[[], bytes]) -> bytes | str:
    """The bytes a render gives, or the kind of error it raises (either must agree)."""
    try:
        return render()
    except Exception as e:  # the comparison is the point
        return type(e).__name__


@pytest.fixture
def rendered_entries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many entries feedgen is given to render, summed (a spliced render gives fewer)."""
    counts: list[int] = []
    real = render_module._add_entry

    def counting(fg: Any, spec: FeedSpec, entry: Entry) -> None:
        counts.append(1)
        real(fg, spec, entry)

    monkeypatch.setattr(render_module, "_add_entry", counting)
    return counts


# -- the cut -----------------------------------------------------------------------------------

_DOC = b"<rss>\n  <channel>\n    <item>a</item>\n    <item>b</item>\n  </channel>\n</rss>\n"


def test_a_clean_document_is_cut_at_its_entries() -> None:
    parts = cut(_DOC, RSS_ITEM, 2)
    assert parts == Parts(
        b"<rss>\n  <channel>\n    ",
        (b"<item>a</item>", b"<item>b</item>"),
        b"\n  </channel>\n</rss>\n",
    )
    assert parts.sep == b"\n    "
    assert parts.join(parts.entries) == _DOC


@pytest.mark.parametrize(
    ("document", "count"),
    [
        (_DOC, 1),  # fewer entries than tags
        (_DOC, 3),  # more entries than tags
        (_DOC, 0),
        (_DOC.replace(b"<item>a", b"<item>a</item>"), 2),  # an end tag in an entry's text
        (_DOC.replace(b"<item>a", b"<item>a<item>"), 2),  # a start tag in an entry's text
        (_DOC.replace(b"a</item>", b"a</item><item>x</item>"), 2),  # a whole fake entry
        (_DOC.replace(b"</item>\n    <item>b", b"</item>\n    x<item>b"), 2),  # text between
        (_DOC.replace(b"</item>\n    <item>b", b"</item>\n  <item>b"), 2),  # other separator
        (_DOC.replace(b"<item>b</item>", b"</item>b<item>"), 2),  # an end before its start
        (b"<rss><item></item></rss>".replace(b"<item></item>", b"</item><item>"), 1),
    ],
)
def test_a_document_whose_tags_do_not_match_its_entries_is_not_cut(
    document: bytes, count: int
) -> None:
    assert cut(document, RSS_ITEM, count) is None


def _tagged(
    texts: Sequence[str], *, head: str = "<rss>\n  <channel>\n    <title>t</title>"
) -> bytes:
    """A document in RSS's shape whose entries hold raw text, as CDATA would: the hostile case
    the cut must refuse (feedgen escapes today; this stands for any writer that does not)."""
    items = "".join(f"\n    <item><![CDATA[{text}]]></item>" for text in texts)
    return f"{head}{items}\n  </channel>\n</rss>\n".encode()


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(
        st.lists(st.sampled_from(MARKERS) | st.text(max_size=4), max_size=6).map("".join),
        min_size=1,
        max_size=8,
    ),
    kept=st.lists(st.integers(0, 7), max_size=8),
)
def test_splicing_raw_text_entries_gives_the_whole_document(
    texts: list[str], kept: list[int]
) -> None:
    """Whatever the entries' text holds (end tags, start tags, separators), a splice is the
    document rendered whole: a cut it cannot be sure of is refused and the render is whole."""
    memo = Fragments()
    warm = [texts[i % len(texts)] for i in kept]
    if warm:
        assert memo.splice(warm, warm, _tagged, RSS_ITEM) == _tagged(warm)
    calls: list[Sequence[str]] = []

    def render(chosen: Sequence[str]) -> bytes:
        calls.append(chosen)
        return _tagged(chosen)

    assert memo.splice(texts, texts, render, RSS_ITEM) == _tagged(texts)
    if any("<item>" in t or "</item>" in t for t in texts if t not in warm):
        assert calls[-1] == texts, "a render that could not be cut is made whole"


def test_an_entry_whose_text_holds_an_end_tag_is_rendered_whole_every_time() -> None:
    memo = Fragments()
    texts = ["a", "b </item> c", "d"]
    calls: list[int] = []

    def render(chosen: Sequence[str]) -> bytes:
        calls.append(len(chosen))
        return _tagged(chosen)

    for _ in range(3):
        assert memo.splice(texts, texts, render, RSS_ITEM) == _tagged(texts)
    assert calls == [3, 3, 3, 3, 3, 3]  # cut refused, whole render; never kept, so again
    assert len(memo) == 0


def test_the_memo_keeps_two_renders_worth_and_the_newest() -> None:
    memo = Fragments()
    for start in range(0, 95, 5):
        keys = [f"e{i}" for i in range(start, start + 10)]
        assert memo.splice(keys, keys, _tagged, RSS_ITEM) == _tagged(keys)
        assert len(memo) <= 2 * 10 + 8
    calls: list[Sequence[str]] = []

    def render(chosen: Sequence[str]) -> bytes:
        calls.append(chosen)
        return _tagged(chosen)

    keys = [f"e{i}" for i in range(95, 105)]
    assert memo.splice(keys, keys, render, RSS_ITEM) == _tagged(keys)
    assert calls == [keys[5:]]  # e95..e99 were kept from the render before
    keys = [f"e{i}" for i in range(10)]
    assert memo.splice(keys, keys, render, RSS_ITEM) == _tagged(keys)
    assert calls[-1] == keys  # the oldest went first


def test_each_keeps_what_it_rendered_and_renders_only_what_is_new() -> None:
    memo = Fragments()
    rendered: list[int] = []

    def item(i: int) -> bytes:
        rendered.append(i)
        return f"item {keys[i]}".encode()

    keys = ["a", "b", "c"]
    assert memo.each(keys, item) == [b"item a", b"item b", b"item c"]
    keys = ["d", "a", "c"]
    assert memo.each(keys, item) == [b"item d", b"item a", b"item c"]
    assert rendered == [0, 1, 2, 0]


def test_slots_forget_the_documents_of_feeds_that_are_gone() -> None:
    slots = Slots()
    slots.slot("a", "atom.xml").each(["x"], lambda i: b"x")
    slots.slot("b", "atom.xml").each(["y"], lambda i: b"y")
    slots.retain({"b"})
    assert len(slots.slot("a", "atom.xml")) == 0
    assert len(slots.slot("b", "atom.xml")) == 1


# -- entries -----------------------------------------------------------------------------------


def _corpus_entries() -> dict[str, list[Entry]]:
    """Every dump of the shared corpus as the entry a feed shows, by source, newest first."""
    mtime = datetime(2025, 6, 1, 12, tzinfo=UTC)
    sources: dict[str, list[Entry]] = {}
    folders = [*sorted(p for p in REAL.iterdir() if p.is_dir()), EDGE]
    for folder in folders:
        entries = []
        for path in sorted(folder.glob("*.md")):
            try:
                dump = parse_dump(path.read_bytes(), path=str(path), mtime=mtime)
            except DumpError:
                continue
            content = clean_html(dump.body or "", base_url=dump.url)
            entries.append(
                Entry(dump.id, dump.url, dump.title, dump.published, folder.name, content)
            )
        sources[folder.name] = sorted(entries, key=lambda e: e.published, reverse=True)
    return sources


@pytest.fixture(scope="module")
def corpus_entries() -> dict[str, list[Entry]]:
    return _corpus_entries()


def _check(
    kind: str,
    memo: Fragments,
    spec: FeedSpec,
    entries: Sequence[Entry],
    history: History | None = None,
) -> bytes | str:
    """Render with ``memo`` and whole; they must agree (bytes, or the error raised)."""
    render = RENDERS[kind]
    urls = feed_urls(spec, BASE_URL)
    spliced = _outcome(
        lambda: fit_feed(spec, entries, urls, partial(render, history=history, memo=memo))[0]
    )
    whole = _outcome(lambda: fit_feed(spec, entries, urls, partial(render, history=history))[0])
    assert spliced == whole, (kind, spec, history)
    return whole


def _json_as_json_dumps_writes_it(document: bytes) -> None:
    expected = json.dumps(json.loads(document), ensure_ascii=False, indent=2) + "\n"
    assert document == expected.encode()


@pytest.mark.usefixtures("corpus_present")
@pytest.mark.parametrize("kind", RENDERS)
@pytest.mark.parametrize("budget", [None, 48 * 1024])
def test_corpus_feeds_spliced_dump_by_dump_match_whole_renders(
    corpus_entries: dict[str, list[Entry]],
    rendered_entries: list[int],
    kind: str,
    budget: int | None,
) -> None:
    """Each source's dumps arrive one at a time, oldest first, into a feed of 8 (the daemon's
    work): every document is the whole render's, and only the new entry is rendered again."""
    shown = 8
    for source, entries in corpus_entries.items():
        spec = replace(SPEC, name=source, sources=(source,), max_feed_bytes=budget)
        memo = Fragments()
        history = History(prev_atom=BASE_URL + f"{source}/archive/a.xml", prev_json="j")
        for arrived in range(1, len(entries) + 1):
            feed = entries[len(entries) - arrived :][:shown]
            before = len(rendered_entries)
            document = _check(kind, memo, spec, feed, history)
            if kind == "json":
                assert isinstance(document, bytes)
                _json_as_json_dumps_writes_it(document)
            elif arrived > 1 and budget is None:
                # The whole render's entries, then the spliced render's new one (or the first).
                assert len(rendered_entries) - before == len(feed) + 1, source
    assert len(memo) > 0


@pytest.mark.parametrize("kind", RENDERS)
def test_hostile_entries_splice_like_whole_renders(kind: str) -> None:
    """Every XSS vector as every field of an entry, raw and cleaned, feed after feed."""
    vectors = [_XML_INVALID.sub("", v) for v in read_vectors()]
    when = datetime(2024, 1, 1, tzinfo=UTC)
    entries = []
    for i, vector in enumerate(vectors):
        cleaned = clean_html(vector, base_url="https://example.org/a")
        html = vector if i % 2 else cleaned.html
        entries.append(
            Entry(
                f"https://example.org/{i}?{vector}",
                f"https://example.org/{i}",
                vector,
                when + timedelta(minutes=i),
                vector,
                Content(html, vector, cleaned.image, vector if i % 3 else None),
            )
        )
    memo = Fragments()
    agreed = 0
    for start in range(0, len(entries), 20):
        spec = replace(SPEC, author=vectors[start], title=vectors[-start])
        # A window of 40 that moves by 20: half kept from the render before, half new.
        if isinstance(_check(kind, memo, spec, entries[start : start + 40]), bytes):
            agreed += 1
    assert agreed == len(range(0, len(entries), 20)), "every feed renders"


# -- fuzzed entries, sequences of renders -------------------------------------------------------

#: Text XML can hold (what cannot is refused alike with or without a memo: tested on its own).
_text = (
    st.lists(st.sampled_from(MARKERS) | st.text(max_size=6), max_size=5)
    .map("".join)
    .map(lambda text: _XML_INVALID.sub("", text))
)
_names = st.sampled_from([None, "", "Ann", "<b>Bob</b> & Co", "]]></item>", "中文"])
_hubs = st.sampled_from(
    [(), ("https://hub.example.org/",), ("https://a.example/", "https://b.example/?x=<&>")]
)


@st.composite
def _entries(draw: st.DrawFn) -> Entry:
    base = datetime(2024, 1, 1, tzinfo=UTC)
    when = base + timedelta(seconds=draw(st.integers(0, 10**7)))
    when += timedelta(microseconds=draw(st.sampled_from([0, 0, 1, 999_999])))
    # The same instant in another zone is an equal datetime: it must render as the same bytes.
    when = when.astimezone(draw(st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))])))
    image = draw(st.sampled_from([None, "https://img.example.org/a.jpg?x=1&y=<2>"]))
    return Entry(
        id="https://example.org/" + draw(st.sampled_from("abcdef")),
        url="https://example.org/" + draw(_text),
        title=draw(_text),
        published=when,
        source=draw(st.sampled_from(["s", "t", "<s>&"])),
        content=Content(draw(_text), draw(_text), image, draw(_names)),
    )


_specs = st.builds(
    FeedSpec,
    name=st.just("s"),
    title=_text.filter(bool),
    sources=st.just(("s",)),
    description=st.none() | _text,
    language=st.sampled_from([None, "en", "zh-CN"]),
    author=_names,
    hubs=_hubs,
    max_feed_bytes=st.sampled_from([None, None, 1500, 2500, 4000]),
)
_histories = st.sampled_from(
    [
        None,
        History(prev_atom=BASE_URL + "s/archive/2024-01-1.xml", prev_json=BASE_URL + "j.json"),
        History(prev_atom=BASE_URL + "s/archive/b.xml"),
        History(
            prev_atom=BASE_URL + "s/archive/a.xml",
            next_atom=BASE_URL + "s/archive/c.xml",
            self_atom=BASE_URL + "s/archive/b.xml",
            self_json=BASE_URL + "s/archive/b.json",
        ),
    ]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    pool=st.lists(_entries(), min_size=1, max_size=10),
    steps=st.lists(
        st.tuples(st.lists(st.integers(0, 19), max_size=8), _specs, _histories),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzzed_sequences_of_renders_match_whole_renders(
    pool: list[Entry], steps: list[tuple[list[int], FeedSpec, History | None]]
) -> None:
    """Entries added, removed, edited (an edited title, the same instant in another zone),
    repeated; the head changing (title, author, hubs, history links); a budget trimming: one
    memo per document through it all, and every render is the whole render's."""
    edited = [replace(e, title=e.title + "!") for e in pool]
    choices = pool + edited
    memos = {kind: Fragments() for kind in RENDERS}
    for picks, spec, history in steps:
        feed = [choices[i % len(choices)] for i in picks]
        for kind, memo in memos.items():
            document = _check(kind, memo, spec, feed, history)
            if kind == "json" and isinstance(document, bytes):
                _json_as_json_dumps_writes_it(document)


@pytest.mark.parametrize("kind", RENDERS)
def test_an_older_entry_arriving_keeps_the_feeds_time(kind: str) -> None:
    """Only the new entry is rendered, and it is not the newest: the head (``updated``,
    ``lastBuildDate``) is still the whole feed's."""
    day = partial(datetime, 2024, 1, tzinfo=UTC)
    entries = [
        Entry(f"i{i}", f"https://example.org/{i}", f"t{i}", day(d), "s", Content("<p>x</p>", "x"))
        for i, d in enumerate((9, 7, 5, 3))
    ]
    memo = Fragments()
    _check(kind, memo, SPEC, [entries[0], entries[2]])
    assert _check(kind, memo, SPEC, entries) == RENDERS[kind](SPEC, entries, URLS)
    head = {
        "atom": b"<updated>2024-01-09T00:00:00Z</updated>",
        "rss": b"<lastBuildDate>Tue, 09 Jan 2024 00:00:00 +0000</lastBuildDate>",
        "json": b'"date_published": "2024-01-09T00:00:00Z"',
    }
    assert head[kind] in RENDERS[kind](SPEC, entries, URLS, memo=memo)


@pytest.mark.parametrize("kind", ["atom", "rss"])
@pytest.mark.parametrize("budget", [30_000, 2500])
def test_trimming_to_a_budget_keeps_the_untrimmed_entries(
    kind: str, budget: int, rendered_entries: list[int]
) -> None:
    """A budget's trial renders (content stripped from the oldest, then the oldest dropped)
    must not push the untrimmed entries out of the memo: the next render starts from them
    (splice.py, ``Fragments``)."""
    when = datetime(2024, 1, 1, tzinfo=UTC)
    entries = [
        Entry(f"i{i}", f"https://example.org/{i}", f"t{i}", when + timedelta(days=i), "s",
              Content("<p>" + "words " * 400 + "</p>", f"summary {i}"))
        for i in range(30)
    ]  # fmt: skip
    spec = replace(SPEC, max_feed_bytes=budget)
    memo = Fragments()
    render = partial(RENDERS[kind], memo=memo)
    _, trim = fit_feed(spec, entries, URLS, render)
    assert trim.stripped and bool(trim.dropped) == (budget < 30_000)
    before = len(rendered_entries)
    assert render(spec, entries, URLS) == RENDERS[kind](spec, entries, URLS)
    assert len(rendered_entries) - before == 1 + len(entries)  # the head's, then the whole's


def test_an_error_in_a_new_entry_leaves_the_memo_right() -> None:
    """An entry feedgen refuses (a character XML cannot hold) fails the render alike, and the
    memo still gives the whole render's bytes afterwards."""
    when = datetime(2024, 1, 1, tzinfo=UTC)
    good = [
        Entry(f"i{i}", f"https://example.org/{i}", f"t{i}", when, "s", Content("<p>x</p>", "x"))
        for i in range(3)
    ]
    bad = replace(good[0], id="bad", title="a\x00b")
    for kind in ("atom", "rss"):
        memo = Fragments()
        _check(kind, memo, SPEC, good)
        assert isinstance(_check(kind, memo, SPEC, [bad, *good]), str)
        assert _check(kind, memo, SPEC, good[1:]) == RENDERS[kind](SPEC, good[1:], URLS)


@pytest.mark.parametrize(("kind", "where"), [("atom", ATOM_ENTRY), ("rss", RSS_ITEM)])
def test_feedgen_writes_the_tags_the_cut_looks_for(kind: str, where: Cut) -> None:
    """If feedgen or lxml wrote entries otherwise (attributes, another indentation) every
    render would silently be whole: the daemon's speed rests on this."""
    when = datetime(2024, 1, 1, tzinfo=UTC)
    entries = [
        Entry(f"i{i}", f"https://example.org/{i}", f"t{i}", when, "s", Content("<p>x</p>", "x"))
        for i in range(3)
    ]
    document = RENDERS[kind](SPEC, entries, URLS)
    parts = cut(document, where, 3)
    assert parts is not None and parts.join(parts.entries) == document


# -- the daemon: a Builder kept open against a cold build in a new process ----------------------

_CONFIG: dict[str, Any] = {
    "title": "Spliced <site>",
    "limit": 4,
    "hub": "https://hub.example.org/",
    "feeds": {
        "s": {"sources": ["s"], "author": "Ann"},
        "t": {"sources": ["t"], "max_feed_bytes": 6000},
        "both": {"sources": ["s", "t"], "archive": False},
    },
}

_COLD_BUILD = """
import json, sys
from datetime import datetime
from pathlib import Path
from feedbridge.app import run_build
from feedbridge.config import parse_config
config, dumps, out, state, base, now = json.loads(sys.argv[1])
run_build(parse_config(config), dumps=Path(dumps), out=Path(out), base_url=base,
          state_dir=Path(state), now=datetime.fromisoformat(now))
"""


def _cold_build(config: dict[str, Any], dumps: Path, out: Path, now: datetime) -> None:
    """A build in a process of its own: no memo of this process (splice, twins) in it."""
    state = out.with_name(out.name + "-state")
    args = json.dumps([config, str(dumps), str(out), str(state), BASE_URL, now.isoformat()])
    env = {**os.environ, "XDG_CACHE_HOME": str(out.with_name(out.name + "-cache"))}
    subprocess.run([sys.executable, "-c", _COLD_BUILD, args], check=True, env=env, timeout=120)


def _dump(path: Path, title: str, when: datetime, body: str) -> None:
    epoch = int(when.timestamp()) * 1000
    path.write_text(
        f"<!--{epoch}-->\n[{title}](https://example.org/{path.stem})\n------\n\n{body}\n"
    )
    os.utime(path, (when.timestamp(), when.timestamp()))


def _files(out: Path) -> dict[str, bytes]:
    return {name: data for name, (data, _) in snapshot(out).items()}


@pytest.fixture
def daemon_dumps(tmp_path: Path) -> Iterator[Path]:
    dumps = tmp_path / "dumps"
    base = datetime(2024, 1, 3, tzinfo=UTC)
    for source in ("s", "t"):
        (dumps / source).mkdir(parents=True)
        for i in range(14):
            body = f"<p>{source} {i} " + "words " * (40 * (i % 4)) + "</p>"
            _dump(
                dumps / source / f"{i:02}.md", f"{source}{i}", base + timedelta(days=11 * i), body
            )
    yield dumps


def test_a_builder_kept_open_publishes_what_a_cold_build_does(
    tmp_path: Path, daemon_dumps: Path, rendered_entries: list[int]
) -> None:
    """Dumps added, edited, removed, a hostile one, the clock moving, the config reloaded with
    new head fields: after each incremental build, every file and twin is byte for byte what
    a new process builds from scratch."""
    dumps = daemon_dumps
    vectors = read_vectors()
    out, state = tmp_path / "out", tmp_path / "state"
    now = datetime(2025, 6, 1, tzinfo=UTC)
    later = datetime(2025, 6, 2, tzinfo=UTC)

    def add(rel: str, title: str, when: datetime, body: str = "<p>new</p>") -> str:
        _dump(dumps / rel, title, when, body)
        return rel

    def remove(rel: str) -> list[str]:
        (dumps / rel).unlink()
        return [rel]

    steps: list[tuple[str, Callable[[], list[str] | None]]] = [
        ("a new dump", lambda: [add("s/20.md", "twenty", datetime(2025, 5, 1, tzinfo=UTC))]),
        (
            "two new, one shown edited",
            lambda: [
                add("s/21.md", "21", datetime(2025, 5, 2, tzinfo=UTC), "<p>" + "b " * 900 + "</p>"),
                add(
                    "t/21.md", "t21", datetime(2025, 5, 3, tzinfo=UTC), "<p>" + "c " * 2000 + "</p>"
                ),
                add("s/13.md", "13 again", datetime(2024, 12, 29, tzinfo=UTC), "<p>edited</p>"),
            ],
        ),
        ("the newest removed", lambda: remove("s/21.md")),
        (
            "hostile dumps",
            lambda: [
                add(
                    "t/22.md",
                    vectors[3],
                    datetime(2025, 5, 4, tzinfo=UTC),
                    "\n".join(vectors[:300]),
                ),
                add(
                    "s/22.md",
                    "</entry></item>]]>",
                    datetime(2025, 5, 5, tzinfo=UTC),
                    '<p title="</entry><entry>]]></item>">x</p>' + "\n".join(vectors[300:600]),
                ),
            ],
        ),
        (
            "a late dump, older than the newest shown",
            lambda: [add("s/23.md", "late", datetime(2025, 4, 30, tzinfo=UTC))],
        ),
        ("a dump coming due", lambda: [add("t/23.md", "due", later - timedelta(hours=1))]),
        ("a full rescan", lambda: None),
    ]
    config = parse_config(_CONFIG)
    with open_builder(
        config, dumps=dumps, out=out, base_url=BASE_URL, state_dir=state, parallel=False
    ) as (builder, _):
        builder.build(now=now)
        for step, (what, change) in enumerate(steps):
            paths = change()
            when = later if what in ("a dump coming due", "a full rescan") else now
            before = len(rendered_entries)
            builder.build(now=when, paths=paths)
            if what == "a new dump":
                # The new entry once in each of s's and both's Atom and RSS documents and in
                # s's newest archive page (Atom; JSON Feed is not feedgen's): the splice is used.
                assert len(rendered_entries) - before == 5
            cold = tmp_path / f"cold{step}"
            _cold_build(_CONFIG, dumps, cold, when)
            assert _files(cold) == _files(out), what
        # SIGHUP: the same Builder, head fields and the fallback author changed.
        reloaded = {
            **_CONFIG,
            "title": "Reloaded",
            "hub": ["https://hub.example.org/", "https://hub2.example.org/"],
            "feeds": {
                "s": {"sources": ["s"], "author": "Bea", "title": "S!", "language": "en"},
                "t": {"sources": ["t"], "max_feed_bytes": 4096, "description": "<d>"},
                "both": {"sources": ["s", "t"], "archive": False},
            },
        }
        builder.target = replace(builder.target, config=parse_config(reloaded))
        builder.build(now=later)
        cold = tmp_path / "cold-reloaded"
        _cold_build(reloaded, dumps, cold, later)
        assert _files(cold) == _files(out)
    assert any(name.endswith(".gz") for name in _files(out))
    assert any("/archive/" in name for name in _files(out))


def test_a_reload_reaches_the_archive_pages(tmp_path: Path, daemon_dumps: Path) -> None:
    """SIGHUP gives the Builder a new target (site title, base URL): the archive pages must
    follow it as the feeds do, not keep what the Builder was opened with."""
    out, state = tmp_path / "out", tmp_path / "state"
    now = datetime(2025, 6, 1, tzinfo=UTC)
    reloaded = parse_config({**_CONFIG, "title": "Reloaded"})
    moved = "https://moved.example.org/feeds/"
    with open_builder(
        parse_config(_CONFIG), dumps=daemon_dumps, out=out, base_url=BASE_URL, state_dir=state,
        parallel=False,
    ) as (builder, _):  # fmt: skip
        builder.build(now=now)
        builder.target = replace(builder.target, config=reloaded, base_url=moved)
        builder.build(now=now)
    cold = tmp_path / "cold"
    run_build(
        reloaded, dumps=daemon_dumps, out=cold, base_url=moved, state_dir=tmp_path / "cs", now=now
    )
    assert _files(cold) == _files(out)
    page = (out / "s" / "archive" / "2024-01-1.html").read_text()
    assert "Reloaded" in page and moved in (out / "s" / "archive" / "2024-01-1.xml").read_text()


def test_the_kept_entries_of_a_feed_that_is_gone_are_forgotten(
    tmp_path: Path, daemon_dumps: Path
) -> None:
    """A daemon runs for months while sources come and go: a removed feed's documents must not
    keep their entries' bytes for the rest of its life."""
    import shutil

    out, state = tmp_path / "out", tmp_path / "state"
    now = datetime(2025, 6, 1, tzinfo=UTC)
    with open_builder(
        parse_config({"limit": 4}), dumps=daemon_dumps, out=out, base_url=BASE_URL,
        state_dir=state, parallel=False,
    ) as (builder, _):  # fmt: skip
        builder.build(now=now)
        kept = {name: len(builder.fragments.slot("t", name)) for name in ("atom.xml", "rss.xml")}
        assert all(kept.values()), kept
        shutil.rmtree(daemon_dumps / "t")
        builder.build(now=now)
        assert not (out / "t").exists()
        for name in ("atom.xml", "rss.xml", "feed.json", "archive/newest.xml"):
            assert len(builder.fragments.slot("t", name)) == 0, name
        assert len(builder.fragments.slot("s", "atom.xml")) > 0


# -- the daemon: bodies found good are not checked again ------------------------------------------


@pytest.mark.parametrize("named", [True, False], ids=["file-event", "rescan"])
def test_a_shown_body_broken_later_leaves_feed_and_archive_alike(
    tmp_path: Path, daemon_dumps: Path, named: bool
) -> None:
    """A body the last build found good is not checked again while its file is unchanged; a
    file rewritten with a NUL deep in its body (its header still good) is, whether a file
    event names it or a rescan finds it, and leaves the feed as a cold build does."""
    out, state = tmp_path / "out", tmp_path / "state"
    now = datetime(2025, 6, 1, tzinfo=UTC)
    shown = daemon_dumps / "s" / "12.md"
    with open_builder(
        parse_config(_CONFIG), dumps=daemon_dumps, out=out, base_url=BASE_URL, state_dir=state,
        parallel=False,
    ) as (builder, _):  # fmt: skip
        builder.build(now=now)
        assert "s12" in (out / "s" / "atom.xml").read_text()
        mtime = shown.stat().st_mtime_ns
        shown.write_bytes(shown.read_bytes() + b"<p>" + b"x" * 5000 + b"\0</p>\n")
        os.utime(shown, ns=(mtime, mtime + 10**9))
        # Compared right after the build that finds it: a later build would mend a mistake.
        report = builder.build(now=now, paths=["s/12.md"] if named else [])
        if not named:
            report = builder.build(now=now)
    assert [Path(r.path).name for r in report.rejected] == ["12.md"]
    cold = tmp_path / "cold"
    _cold_build(_CONFIG, daemon_dumps, cold, now)
    assert _files(cold) == _files(out)
    assert "s12" not in (out / "s" / "atom.xml").read_text()


def test_a_daemon_build_checks_only_the_new_dumps_body(
    tmp_path: Path, daemon_dumps: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The speed-up itself: after a build, a new dump's build asks the content cache about the
    new row only (not every row the archived feeds show)."""
    out, state = tmp_path / "out", tmp_path / "state"
    now = datetime(2025, 6, 1, tzinfo=UTC)
    with open_builder(
        parse_config(_CONFIG), dumps=daemon_dumps, out=out, base_url=BASE_URL, state_dir=state,
        parallel=False,
    ) as (builder, _):  # fmt: skip
        builder.build(now=now)
        asked: list[list[str]] = []
        cached = builder.index.cached

        def recording(rows: Any) -> set[str]:
            rows = list(rows)
            asked.append([row.rel for row in rows])
            return cached(rows)

        monkeypatch.setattr(builder.index, "cached", recording)
        _dump(daemon_dumps / "s" / "30.md", "new", datetime(2025, 5, 9, tzinfo=UTC), "<p>n</p>")
        builder.build(now=now, paths=["s/30.md"])
    # The first question is _settled's (the next, the feeds' own, is about what they render).
    assert asked[0] == ["s/30.md"]
