"""What may be published as a URL: absolute http(s) (mailto in bodies), URI characters only, a
host every parser reads the same way, and no structure that IDNA made up."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedbridge.urls import (
    _C0_AND_SPACE,
    URI_SAFE,
    resolve,
    resolve_srcset,
    srcset_candidates,
    to_uri,
    url_host,
    valid_host,
    web_url,
)

BASE = "https://www.example.org/a/b.html"
URI_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + URI_SAFE)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/p?q=(1)", "https://a.example/p?q=(1)"),
        ("http://例子.中国/文章 1", "http://xn--fsqu00a.xn--fiqs8s/%E6%96%87%E7%AB%A0%201"),
        ("https://[::1]:8080/a", "https://[::1]:8080/a"),
        ("https://1.2.3.4/", "https://1.2.3.4/"),
        ("https://X.Org:443/a#:~:text=x", "https://X.Org:443/a#:~:text=x"),
        ("https://user:pw@a.example/", "https://user:pw@a.example/"),
        ("https://a.example./x", "https://a.example./x"),
        ("https://a.example#top", "https://a.example#top"),
        ("https://a.example:/x", "https://a.example:/x"),
        ("https://a.example/?a=1®ion=2", "https://a.example/?a=1%C2%AEion=2"),
        ("https://a.example/%zz", "https://a.example/%zz"),
    ],
)
def test_web_url_accepts(url: str, expected: str) -> None:
    assert web_url(url) == expected
    assert web_url(expected) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://a>b/", "invalid host"),  # was published with the ``>``
        ("http://a℀b/", "changes its structure under IDNA"),  # IDNA (NFKC) makes it aa/cb
        ("http://a．b/", "changes its structure under IDNA"),  # a full-width dot inside a label
        ("http://straße.example/", "IDNA 2003 and 2008"),  # ss.example here, not in browsers
        ("http://[::1/x", "unclosed IPv6"),  # was a ValueError out of urlsplit
        ("http://[v1.x]/", "invalid host"),
        ("http://[fe80::1%25eth0]/", "invalid host"),
        ("http://a:99999/", "invalid port"),
        ("http://a:8x/", "invalid port"),
        ("http://a..b/", "invalid host"),
        ("http://-a.example/", "invalid host"),
        ("http://a-.example/", "invalid host"),
        ("http://a_b.example/", "invalid host"),
        ("http://a\\b.example/", "invalid host"),  # browsers read ``\`` as ``/``
        ("http://a%2eb/", "invalid host"),
        ("http://0x7f.1/", "invalid host"),  # browsers read 127.0.0.1
        ("http://1.2.3.999/", "invalid host"),
        ("http://xn--a.example/", "invalid host"),  # not the IDNA form of anything
        ("http://" + "a" * 64 + ".example/", "invalid host"),
        ("http://" + "例" * 300 + "/", "too long"),
        ("http:///x", "no host"),
        ("http:x", "not an absolute"),
        ("javascript:alert(1)", "not http or https"),
        ("mailto:a@b.example", "not http or https"),
        ("/relative", "not an absolute"),
    ],
)
def test_web_url_rejects(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        web_url(url)


def test_to_uri_always_gives_uri_characters() -> None:
    for url in ("http://a℀b/", "javascript:alert('中')", "http://a b/<x>"):
        assert set(to_uri(url)) <= URI_CHARS


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/x/y.jpg", "https://www.example.org/x/y.jpg"),
        ("c.html", "https://www.example.org/a/c.html"),
        ("//cdn.example/i.png", "https://cdn.example/i.png"),
        ("  https://a.example/中 ", "https://a.example/%E4%B8%AD"),
        ("\x01 /x", "https://www.example.org/x"),
        ("mailto:a@b.example", "mailto:a@b.example"),
        ("mailto:中@b.example", "mailto:%E4%B8%AD@b.example"),
        ("javascript:alert(1)", None),
        ("java\nscript:alert(1)", None),
        (" JAVASCRIPT:alert(1)", None),
        ("data:image/png;base64,AAAA", None),
        ("vbscript:x", None),
        ("file:///etc/passwd", None),
        ("ftp://a.example/", None),
        ("http://a>b/", None),
        ("//evil℀.example/", None),
        ("http://[::1/x", None),
        ("", None),
    ],
)
def test_resolve(url: str, expected: str | None) -> None:
    assert resolve(url, BASE) == expected


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        (
            "a.jpg 1x,b.jpg 2x",
            "https://www.example.org/a/a.jpg 1x, https://www.example.org/a/b.jpg 2x",
        ),
        ("javascript:alert(1) 1x, /b.jpg 2x", "https://www.example.org/b.jpg 2x"),
        ("data:image/png;base64,AAAA 1x, /b.jpg 2x", "https://www.example.org/b.jpg 2x"),
        ("/a.jpg, data:x,y 2x", "https://www.example.org/a.jpg"),
        ("mailto:a@b.example 1x", None),
        ("http://a>b/x.jpg 1x", None),
        # As browsers read it: a URL is a run of non-space, commas and all.
        ("/a.jpg,/b.jpg", "https://www.example.org/a.jpg%2C/b.jpg"),
        ("/a.jpg, /b.jpg", "https://www.example.org/a.jpg, https://www.example.org/b.jpg"),
        (" , ,, ", None),
        (
            "/a.jpg   100w  ,  /b.jpg 200w",
            "https://www.example.org/a.jpg 100w, https://www.example.org/b.jpg 200w",
        ),
    ],
)
def test_resolve_srcset_keeps_only_http(srcset: str, expected: str | None) -> None:
    assert resolve_srcset(srcset, BASE) == expected


# -- properties -------------------------------------------------------------------------------

label = st.one_of(
    st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,8}[a-zA-Z0-9])?", fullmatch=True),
    st.text(min_size=1, max_size=6),
    st.sampled_from(["xn--fsqu00a", "例子", "a℀b", "ａｂ", "a．b", "ß", "0x7f", "999", "-", ""]),
)
host = st.one_of(
    st.lists(label, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["[::1]", "[::1", "[v1.x]", "1.2.3.4", "[fe80::1%eth0]", "a>b", "a@b"]),
)
urls = st.builds(
    lambda scheme, userinfo, host, port, path: f"{scheme}{userinfo}{host}{port}{path}",
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "javascript:", "", "//", "http:"]),
    st.sampled_from(["", "u@", "u:p@", "a@b@", "中@", "%40@"]),
    host,
    st.sampled_from(["", ":80", ":8080", ":", ":99999", ":x", "::1"]),
    st.one_of(st.text(max_size=20), st.sampled_from(["/", "/a?b#c", "#x", "?q=中", "/%zz", "\\x"])),
)


def assert_published(url: str, *, schemes: tuple[str, ...]) -> None:
    """What a published URL must be: URI characters only, one of ``schemes``, and for the
    web a valid host that urllib reads back unchanged; stable when published again."""
    assert set(url) <= URI_CHARS, url
    parts = urlsplit(url)
    assert parts.scheme.lower() in schemes, url
    if parts.scheme.lower() != "mailto":
        authority = url.split("://", 1)[1]
        hostport = authority.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
        written = (
            hostport
            if hostport.startswith("[") and hostport.endswith("]")
            else hostport.split("]")[0]
        )
        written = (
            written + "]" if written.startswith("[") and not written.endswith("]") else written
        )
        if not written.startswith("["):
            written = written.partition(":")[0]
        assert valid_host(written), url
        assert parts.hostname == written.lower().strip("[]"), url
        assert parts.port is None or 0 <= parts.port <= 65535
    assert web_url(url, mailto=True) == url


@given(urls)
def test_web_url_publishes_only_valid_unambiguous_urls(url: str) -> None:
    try:
        out = web_url(url)
    except ValueError:
        return
    assert_published(out, schemes=("http", "https"))


@given(urls, st.sampled_from([BASE, "http://例子.中国/a/", "https://[::1]:8443/x?y"]))
def test_resolve_publishes_only_valid_unambiguous_urls(url: str, base: str) -> None:
    base = web_url(base)
    out = resolve(url, base)
    if out is not None:
        assert_published(out, schemes=("http", "https", "mailto"))


@given(st.lists(st.one_of(urls, st.sampled_from(["1x", "2x", "100w", ",", " ", ", "])), max_size=6))
def test_resolve_srcset_publishes_only_http_urls(items: list[str]) -> None:
    out = resolve_srcset(" ".join(items), BASE)
    if out is None:
        return
    for candidate in out.split(", "):
        url, _, descriptor = candidate.partition(" ")
        assert_published(url, schemes=("http", "https"))
        assert "," not in descriptor


def _srcset_by_the_standard(srcset: str) -> list[tuple[str, str]]:
    """The HTML standard's srcset parsing, a character at a time (the oracle for the patterns)."""
    space = " \t\n\f\r"
    candidates, pos, end = [], 0, len(srcset)
    while True:
        while pos < end and srcset[pos] in space + ",":
            pos += 1
        if pos >= end:
            return candidates
        start = pos
        while pos < end and srcset[pos] not in space:
            pos += 1
        url = srcset[start:pos]
        if url.endswith(","):
            candidates.append((url.rstrip(","), ""))
            continue
        start, inside = pos, False
        while pos < end and (inside or srcset[pos] != ","):
            inside = {"(": True, ")": False}.get(srcset[pos], inside)
            pos += 1
        candidates.append((url, " ".join(srcset[start:pos].split())))


@given(st.text(alphabet=" \t\n\f\r\v\u3000,()a/1xw.", max_size=40))
def test_srcset_candidates_split_as_the_standard_does(srcset: str) -> None:
    assert srcset_candidates(srcset) == _srcset_by_the_standard(srcset)


#: References that the fast way of ``resolve`` takes, and near misses that it must leave to urllib.
plain_refs = st.builds(
    lambda start, rest: start + rest,
    st.sampled_from(["https://h.example", "http://a-1.example", "https://H.example", "/", "//h.x",
                     "https://h.example:8", "http://[::1]", "https://0x7f.1", "https://-a.b", ""]),
    st.text(alphabet="/.;?#%aZ09-_~=&@:!$'()*+,[] \t\n\u6587", max_size=16),
)  # fmt: skip
plain_bases = st.sampled_from(
    [BASE, "http://www.example.org", "https://h.example/x/?q#f", "https://H.example/",
     "https://h.example:8/", "https://[::1/", "", "https://例子.中国/a"]
)  # fmt: skip


@given(plain_refs, plain_bases)
def test_resolve_is_web_url_of_urljoin(url: str, base: str) -> None:
    """``resolve`` skips urllib for plain references; the result must be urllib's all the same."""
    try:
        expected: str | None = web_url(urljoin(base, url.strip(_C0_AND_SPACE)), mailto=True)
    except ValueError:
        expected = None
    if not url.strip(_C0_AND_SPACE):
        expected = None
    assert resolve(url, base) == expected


@given(plain_refs)
def test_url_host_is_urllibs_hostname(url: str) -> None:
    try:
        expected = urlsplit(url).hostname
    except ValueError:
        with pytest.raises(ValueError):
            url_host(url)
        return
    assert url_host(url) == expected
