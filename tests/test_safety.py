"""Hostile input end to end: every vector of ``tests/data/xss-vectors.txt`` as a dump's title and
as its body, built into feeds, read back as readers read each field and judged by an independent
HTML5 parser (``tests/safety.py``).  The rule: whatever goes into a feed field is safe for the way
readers read that field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import html5lib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from feedbridge import content as content_module
from feedbridge.config import Config
from feedbridge.content import clean_html
from feedbridge.dump import parse_dump

from .conftest import EDGE
from .helpers import build
from .safety import markup_problems, read_vectors, text_problems, url_problem

VECTORS = read_vectors()
BASE = "https://www.example.org/news/2024/article.html"
#: A source folder named like an attack: its name is every feed title, category and tag.
HOSTILE_SOURCE = '"><img src=x onerror=alert(1)>'
ATOM = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"


def test_the_vector_list_is_large_and_varied() -> None:
    assert len(VECTORS) >= 1000
    assert len(set(VECTORS)) == len(VECTORS)
    for needle in ("<xmp>", "<noscript>", "<svg>", "<math>", "srcdoc", "formaction", "&#x09;"):
        assert any(needle in v for v in VECTORS), needle


def test_the_judge_can_fail() -> None:
    """The judge flags what it must, so a pass below means something."""
    assert markup_problems("<img src=x onerror=alert(1)>")
    assert markup_problems('<a href="jav&#x09;ascript:alert(1)">x</a>')
    assert markup_problems("<svg><style><img src=x onerror=alert(1)></style></svg>")
    assert markup_problems('<img srcset="https://a.example/x.jpg 1x, javascript:alert(1) 2x">')
    assert markup_problems('<iframe srcdoc="x"></iframe>')
    assert markup_problems('<p style="color:red">x</p>')
    assert markup_problems('<img src="relative.jpg">')
    assert not markup_problems('<p><a href="https://x.example/a?b=1&amp;c=2">x</a></p>')
    assert text_problems("<b>x</b>") and not text_problems("&lt;b&gt; AT&amp;T")
    assert url_problem("mailto:a@example.org", mailto=True) is None


def test_every_vector_cleans_safely() -> None:
    failures = []
    for vector in VECTORS:
        cleaned = clean_html(vector, base_url=BASE)
        problems = markup_problems(cleaned.html)
        if problems:
            failures.append(f"{vector!r} -> {cleaned.html!r}: {problems}")
        if cleaned.image and url_problem(cleaned.image, mailto=False):
            failures.append(f"{vector!r}: image {cleaned.image!r}")
    assert not failures, "\n".join(failures[:20])


def test_the_structural_stage_handles_every_vector_itself() -> None:
    """``clean_html``'s fallback is a net, not the way hostile input is handled."""
    for vector in VECTORS:
        content_module._structured(content_module.strip_forbidden(vector), BASE)


def test_hostile_html_from_the_corpus_is_safe_as_a_browser_parses_it() -> None:
    path = EDGE / "hostile-html.md"
    dump = parse_dump(path.read_bytes(), path=str(path), mtime=datetime.now(UTC))
    assert markup_problems(clean_html(dump.body or "", base_url=dump.url).html) == []


#: Pieces that put parsers in odd states when glued to each other and to the vectors.
TOKENS = [
    "<p>", "</p>", "<svg>", "<math>", "<noscript>", "</noscript>", "<xmp>", "<image ", "<table>",
    "<style>", "</style>", "<template>", "<select>", "<!--", "-->", "<a ", 'href="', "src=",
    "srcset='", "&#", "x0A;", ";", "'", '"', ">", "<", "/", " ", "\n",
]  # fmt: skip
html_ish = st.lists(
    st.one_of(st.sampled_from(VECTORS), st.sampled_from(TOKENS), st.text(max_size=12)),
    max_size=10,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(html_ish)
def test_cleaning_never_raises_and_is_always_safe(body: str) -> None:
    content_module._structured(content_module.strip_forbidden(body), BASE)
    cleaned = clean_html(body, base_url=BASE)
    assert markup_problems(cleaned.html) == []
    for text in (cleaned.summary, cleaned.author or "", cleaned.html):
        etree.Element("x").text = text  # what feedgen does: raises on characters XML forbids


def test_a_failing_first_stage_still_gives_a_safe_body(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(body: str, base_url: str) -> None:
        raise RuntimeError("lxml fell over")

    monkeypatch.setattr(content_module, "_structured", broken)
    cleaned = clean_html(
        '<p onclick="x">hi <script>alert(1)</script><a href="/a">there</a></p>', base_url=BASE
    )
    assert cleaned.html == "<p>hi alert(1) there</p>"
    assert cleaned.summary == "hi alert(1) there"
    hostile = clean_html("<div>" * 100_000 + "&lt;script&gt;\x01<b", base_url=BASE)
    assert hostile.html == "<p>&lt;script&gt;&lt;b</p>"


# --- feeds -------------------------------------------------------------------------------------


def _dump(title: str, body: str, n: int) -> bytes:
    title = " ".join(title.replace("\0", "").split()) or "untitled"
    head = f"<!--{1_600_000_000_000 + n * 1000}-->\n[{title}](https://www.example.org/a/{n})\n"
    return (head + "------\n\n" + body + "\n").encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    dumps = root / "dumps"
    for source in ("xss", HOSTILE_SOURCE):
        (dumps / source).mkdir(parents=True)
    for n, vector in enumerate(VECTORS):
        (dumps / "xss" / f"{n:05d}.md").write_bytes(_dump(vector, vector, n))
    (dumps / HOSTILE_SOURCE / "a.md").write_bytes(
        _dump("t", "<address>&lt;img src=x onerror=alert(1)&gt;</address><p>x</p>", 0)
    )
    out = root / "out"
    build(dumps, out, Config(limit=len(VECTORS) + 10, title="<script>alert(1)</script>"))
    return out


def _feed_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


def _text_field(problems: list[str], where: str, text: str | None) -> None:
    """A field that some readers render as HTML: as HTML it must hold text only."""
    found = text_problems(text or "")
    if found:
        problems.append(f"{where}: {text!r}: {found}")


def _html_field(problems: list[str], where: str, text: str | None) -> None:
    found = markup_problems(text or "")
    if found:
        problems.append(f"{where}: {found} in {text!r}"[:400])


def _name_field(problems: list[str], where: str, text: str | None) -> None:
    """Names are text to some readers and HTML to others: both must agree."""
    if text and ("<" in text or ">" in text):
        problems.append(f"{where}: markup characters in name {text!r}")


def test_every_feed_was_built(hostile_site: Path) -> None:
    names = [p.name for p in _feed_dirs(hostile_site)]
    assert names == sorted(["xss", HOSTILE_SOURCE])
    parsed = feedparser.parse((hostile_site / "xss" / "atom.xml").read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert len(parsed.entries) > len(VECTORS) * 0.9  # a few are rejected (NUL bytes, no title)


def test_atom_fields_are_safe_for_their_readers(hostile_site: Path) -> None:
    problems: list[str] = []
    for folder in _feed_dirs(hostile_site):
        root = etree.parse(str(folder / "atom.xml")).getroot()
        for el in root.iter(f"{ATOM}title", f"{ATOM}subtitle", f"{ATOM}summary"):
            # type="text" only for a text that no reading makes markup of: one without "<"
            if el.get("type") != "html" and "<" in (el.text or ""):
                problems.append(f"{folder.name}: <{el.tag}> holds '<' but is not type=html")
            _text_field(problems, f"atom {el.tag}", el.text)
        for el in root.iter(f"{ATOM}content"):
            assert el.get("type") == "html"
            _html_field(problems, "atom content", el.text)
        for el in root.iter(f"{ATOM}name"):
            _name_field(problems, "atom author", el.text)
        for el in root.iter(f"{ATOM}category"):
            _name_field(problems, "atom category", el.get("term"))
        for el in root.iter(f"{MEDIA}thumbnail"):
            if url_problem(el.get("url", ""), mailto=False):
                problems.append(f"atom thumbnail {el.get('url')!r}")
    assert not problems, "\n".join(problems[:20])


def test_rss_fields_are_safe_for_their_readers(hostile_site: Path) -> None:
    problems: list[str] = []
    for folder in _feed_dirs(hostile_site):
        root = etree.parse(str(folder / "rss.xml")).getroot()
        for el in root.iter("title"):
            _text_field(problems, "rss title", el.text)
        # HTML: the escaped summary, or (feedgen's choice) the cleaned body of an entry without text
        for el in root.iter(f"{CONTENT}encoded", "description"):
            _html_field(problems, f"rss {el.tag}", el.text)
        for el in root.iter(f"{DC}creator", "category"):
            _name_field(problems, f"rss {el.tag}", el.text)
        for el in root.iter(f"{MEDIA}thumbnail"):
            if url_problem(el.get("url", ""), mailto=False):
                problems.append(f"rss thumbnail {el.get('url')!r}")
    assert not problems, "\n".join(problems[:20])


def test_json_feed_fields_are_safe_for_their_readers(hostile_site: Path) -> None:
    problems: list[str] = []
    for folder in _feed_dirs(hostile_site):
        feed = json.loads((folder / "feed.json").read_text("utf-8"))
        for author in feed["authors"]:
            _name_field(problems, "json feed author", author["name"])
        for item in feed["items"]:
            _html_field(problems, "json content_html", item["content_html"])
            for author in item.get("authors", []):
                _name_field(problems, "json author", author["name"])
            for tag in item["tags"]:
                _name_field(problems, "json tag", tag)
            if "image" in item and url_problem(item["image"], mailto=False):
                problems.append(f"json image {item['image']!r}")
    assert not problems, "\n".join(problems[:20])


def test_readers_get_back_the_text_that_was_written(hostile_site: Path) -> None:
    """Escaping for HTML readers loses nothing: a reader that renders the field as HTML shows
    exactly the dump's title, and feedparser reads every entry."""
    rss = etree.parse(str(hostile_site / "xss" / "rss.xml")).getroot()
    atom = etree.parse(str(hostile_site / "xss" / "atom.xml")).getroot()
    for root, path in (
        (rss, "channel/item/title"),
        (atom, f"{ATOM}entry/{ATOM}title"),
        (rss, "channel/item/description"),
        (atom, f"{ATOM}entry/{ATOM}summary"),
    ):
        shown = {_shown(el) for el in root.iterfind(path)}
        assert "<script>alert(1)</script>" in shown, path  # the title, and &lt;script&gt; text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown, path
    for fmt in ("atom.xml", "rss.xml"):
        parsed = feedparser.parse((hostile_site / "xss" / fmt).read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")


def _shown(el: etree._Element) -> str:
    """What a reader shows for a field: Atom's ``type="text"`` as is, anything else as HTML."""
    if el.tag.startswith(ATOM) and el.get("type", "text") == "text":
        return el.text or ""
    return _rendered(el.text or "")


def _rendered(fragment: str) -> str:
    """The text a browser shows for an HTML fragment."""
    root = html5lib.parseFragment(fragment, treebuilder="etree", namespaceHTMLElements=False)
    return "".join(root.itertext())


def test_opml_attributes_are_safe_for_their_readers(hostile_site: Path) -> None:
    root = etree.parse(str(hostile_site / "feeds.opml")).getroot()
    outlines = list(root.iter("outline"))
    assert len(outlines) == 2
    for outline in outlines:
        for attr in ("text", "title"):
            assert text_problems(outline.get(attr, "")) == [], outline.get(attr)
        for attr in ("xmlUrl", "htmlUrl"):
            assert url_problem(outline.get(attr, ""), mailto=False) is None


def test_index_page_runs_nothing(hostile_site: Path) -> None:
    page = html5lib.parse(
        (hostile_site / "index.html").read_bytes(), treebuilder="etree", namespaceHTMLElements=False
    )
    for el in page.iter():
        assert el.tag not in ("script", "iframe", "object", "embed", "svg", "math", "base", "img")
        for attr, value in el.attrib.items():
            assert not attr.lower().startswith("on"), (el.tag, attr)
            if attr in ("href", "src"):
                if el.tag == "link" and el.get("rel") == "icon" and attr == "href":
                    # the page's own icon, an image (CSP img-src): never a document or script
                    assert value.startswith("data:image/svg+xml,"), value
                    continue
                scheme = value.partition(":")[0].lower() if ":" in value else ""
                assert scheme in ("", "http", "https"), (el.tag, attr, value)
