"""Property tests of the parser: for any bytes, only DumpError; a head agrees with the whole
file; the fast path agrees with the parser; what is accepted is publishable.

Inputs come from the grammar (every line with its variants and hostile values) and from
byte-level mutations of every file of the shared corpus.  The unguarded parser is called
(``_parse_dump``), so a bug shows as the exception it is rather than as the rejection
``parse_dump`` would turn it into.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbridge.dump import MAX_TIME, MIN_TIME, _parse_dump, plain_head, strip_forbidden
from feedbridge.errors import DumpError
from feedbridge.model import Dump, Provenance
from feedbridge.urls import normalize_url

from .conftest import REPO, edge_files, real_dumps
from .test_urls import assert_published
from .test_urls import urls as odd_urls

MTIME = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
#: The head a scan reads (``index.HEAD_BYTES``); cuts elsewhere are tried as well.
HEAD_BYTES = 2048
#: Moderate: the suite stays fast; the coverage-guided fuzzer (benchmarks/fuzz.py) goes deep.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CORPUS = [p.read_bytes() for p in [*real_dumps(), *edge_files()]]


def verdict(data: bytes, *, complete: bool = True) -> Dump | DumpError:
    """The parser's answer, checked for what every answer must be."""
    try:
        dump = _parse_dump(data, path="p.md", mtime=MTIME, complete=complete)
    except DumpError as e:
        assert e.line >= 1 and e.reason, e
        assert "\n" not in str(e) and "\r" not in str(e), e
        return e
    assert dump.published.tzinfo is UTC
    assert dump.published.utcoffset() is not None and not dump.published.utcoffset()
    if dump.provenance is Provenance.MTIME:
        assert dump.published == MTIME
    else:
        assert MIN_TIME <= dump.published < MAX_TIME
    assert_published(dump.url, schemes=("http", "https"))
    assert dump.id == normalize_url(dump.url)
    assert dump.title and dump.title == " ".join(dump.title.split())
    assert strip_forbidden(dump.title) == dump.title
    assert (dump.body is None) == (not complete)
    if dump.body is not None:
        assert strip_forbidden(dump.body) == dump.body
    return dump


def facts(d: Dump) -> tuple[object, ...]:
    return (d.id, d.url, d.title, d.published, d.provenance, d.warnings)


def check_plain(data: bytes, *, complete: bool, parsed: Dump | DumpError) -> None:
    plain = plain_head(data, complete=complete)
    if plain is not None:
        assert isinstance(parsed, Dump), (plain, parsed)
        assert plain == (parsed.id, parsed.url, parsed.title, int(parsed.published.timestamp()))
        assert parsed.provenance is Provenance.EPOCH and not parsed.warnings


def check_head(data: bytes, cut: int, whole: Dump | DumpError) -> None:
    """A head (``complete=False``) gives the whole file's answer or defers to it: a
    rejection, or a time from the modification time (the caller then reads the whole)."""
    head = data[:cut]
    if not head or cut >= len(data):
        return
    answer = verdict(head, complete=False)
    check_plain(head, complete=False, parsed=answer)
    if isinstance(answer, DumpError) or answer.provenance is Provenance.MTIME:
        return
    if isinstance(whole, Dump):
        assert facts(answer) == facts(whole), (cut, answer, whole)
    else:
        # A head judges its header, never the body: only the body can reject the whole.
        assert whole.reason.startswith(("NUL byte", "not UTF-8")), (cut, whole)
        assert whole.line >= min(5, head.count(b"\n") + 1), (cut, whole)


def check_all(data: bytes, cuts: list[int]) -> None:
    whole = verdict(data)
    check_plain(data, complete=True, parsed=whole)
    for cut in {*cuts, HEAD_BYTES}:
        check_head(data, cut, whole)


# -- the grammar, with hostile values in every line -------------------------------------------

DATES = [
    "Thu, 02 Jul 2020 17:14:14 +0000",
    "2022-04-11T03:23:48Z",
    "2022-04-11T03:23:48+08:00",
    "0001-01-01T00:00:00+01:00",  # OverflowError once
    "9999-12-31T23:59:59-05:00",  # OverflowError once
    "9999-12-31T23:59:59+00:00",
    "Thu, 02 Jul 99999999999999999999 17:14:14 +0000",
    "Thu, 02 Jul 2020 17:14:14 +2400",
    "Thu, 02 Jul 2020 17:14:14 -9999",
    "Mon, 10 Jan 2022 16:06:38 GMT",
    "2025-02-14 09:34:11",
    "1800-01-01T00:00:00Z",
    "NaN",
    "",
]
date_text = st.one_of(st.sampled_from(DATES), st.text(max_size=30))
epoch_line = st.one_of(
    st.just(""),
    st.sampled_from(["<!--NaN-->", "<!---->", "<!-- -->", "<!--", "-->", "<!-- 1641833943000 -->"]),
    st.integers(0, 10**22).map(lambda n: f"<!--{n}-->"),
    st.from_regex(r"<!--\s*[0-9]{0,25}\s*-->", fullmatch=True),
    st.text(max_size=20).map(lambda t: f"<!--{t}-->"),
)
title_text = st.one_of(
    st.text(max_size=30),
    st.lists(
        st.sampled_from(
            ["a", " ", "[", "]", "(", ")", "](", "&amp;", "&#x110000;", "&#99999999999;", "&", "中"]
        ),
        max_size=12,
    ).map("".join),
)
web_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
    st.sampled_from(["http://", "https://", "HTTPS://"]),
    st.sampled_from(["a.example", "例子.中国", "[::1]", "1.2.3.4", "u:p@a.example", "A.Example."]),
    st.sampled_from(["", ":443", ":8080"]),
    st.one_of(
        st.sampled_from(["/", "/a?b=(1)#c", "/中 文", "/%41%zz", "/a](http://b/", "?utm_x=1"]),
        st.text(max_size=15),
    ),
)
title_line = st.one_of(
    st.builds(lambda t, u: f"[{t}]({u})", title_text, st.one_of(web_urls, odd_urls)),
    st.text(max_size=40),
)
body_text = st.one_of(
    st.text(max_size=60),
    st.builds(lambda d: f"<div><i>{d}</i></div><p>x</p>", date_text),
    st.builds(lambda d: f"<div><i>Author<br>{d}</i></div>", date_text),
    st.builds(lambda d: f'<p><time datetime="{d}">x</time></p>', date_text),
    st.builds(
        lambda d, e: f'<div><i><time datetime="{d}">x</time><br>{e}</i></div>', date_text, date_text
    ),
    st.sampled_from(["", "<div><i>", "<time datetime='", "&#9999999999;"]),
)


@st.composite
def grammar_dumps(draw: st.DrawFn) -> bytes:
    lines = [draw(epoch_line), draw(title_line), draw(st.sampled_from(["------", "---", "--", ""]))]
    if draw(st.booleans()):
        lines.append("日期：" + draw(date_text))
    lines += draw(st.sampled_from([[""], [], ["", ""]]))
    lines.append(draw(body_text))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(line for line in lines if line is not None)
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode("utf-8", "surrogatepass")


@FUZZ
@given(grammar_dumps(), st.lists(st.integers(0, 400), max_size=4))
def test_grammar_dumps_parse_or_are_rejected(data: bytes, cuts: list[int]) -> None:
    check_all(data, cuts)


@FUZZ
@given(grammar_dumps())
def test_grammar_dumps_agree_at_every_line_cut(data: bytes) -> None:
    ends = [i for i, b in enumerate(data) if b == 0x0A]
    # Every line end, and every byte of the start of the body (where date markers stand).
    body = ends[3] if len(ends) > 3 else len(data)
    check_all(data, [c for e in ends for c in (e, e + 1, e + 2)] + list(range(body, body + 160)))


# -- byte-level mutations of the real corpus ---------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    data = bytearray(draw(st.sampled_from(CORPUS)))
    # Most headers are in the first few hundred bytes: aim there more often than not.
    pos = st.one_of(st.integers(0, 300), st.integers(0, max(len(data), 1)))
    for _ in range(draw(st.integers(1, 4))):
        at = min(draw(pos), len(data))
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=4),
                    st.sampled_from([b"\n", b"\r\n", b"](", b"[", b")", b"\x00", b"\xff", b"&#"]),
                )
            )
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[at:]
    cuts = [draw(st.integers(0, max(len(data), 1))) for _ in range(2)]
    return bytes(data), cuts


@FUZZ
@given(mutated())
def test_mutated_corpus_parses_or_is_rejected(case: tuple[bytes, list[int]]) -> None:
    check_all(*case)


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_corpus_heads_agree_at_every_line_cut(index: int) -> None:
    data = CORPUS[index]
    ends = [i for i, b in enumerate(data[:4096]) if b == 0x0A][:6]
    check_all(data, [c for e in ends for c in (e - 1, e, e + 1, e + 2)])


def test_the_properties_reach_both_verdicts() -> None:
    """The strategies produce accepted and rejected dumps (so the properties test something)."""
    accepted = [isinstance(verdict(d), Dump) for d in CORPUS]
    assert any(accepted) and not all(accepted)


def test_the_fuzzers_corpus_still_holds_the_invariants() -> None:
    """Every input the coverage-guided fuzzer kept (benchmarks/fuzz-corpus/dump) replayed."""
    seeds = sorted((REPO / "benchmarks" / "fuzz-corpus" / "dump").iterdir())
    assert len(seeds) > 100
    for seed in seeds:
        data = seed.read_bytes()
        ends = [i for i, b in enumerate(data[: HEAD_BYTES + 64]) if b == 0x0A][:6]
        check_all(data, [c for e in ends for c in (e, e + 1, e + 2)])
