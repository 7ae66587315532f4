"""An independent judge of published HTML: what a browser (the WHATWG parsing algorithm, as
html5lib implements it) would build from a fragment, checked against an allow-list.

Nothing here is imported from feedbridge: the rules are written down again, so a change to
the cleaner cannot change what counts as safe."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import html5lib

VECTORS_FILE = Path(__file__).parent / "data" / "xss-vectors.txt"
_PLACEHOLDERS = {"{LF}": "\n", "{CR}": "\r", "{TAB}": "\t", "{NUL}": "\0", "{FF}": "\f"}

#: Elements that cannot run anything, load anything by themselves, or change the page around them.
SAFE_ELEMENTS = frozenset(
    {
        "a", "abbr", "acronym", "article", "aside", "audio", "b", "bdi", "bdo", "blockquote",
        "br", "caption", "center", "cite", "code", "col", "colgroup", "data", "dd", "del",
        "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "footer", "h1", "h2",
        "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "i", "img", "ins", "kbd", "li", "mark",
        "nav", "ol", "p", "picture", "pre", "q", "rp", "rt", "rtc", "ruby", "s", "samp", "section",
        "small", "source", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody",
        "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "video", "wbr",
    }
)  # fmt: skip
#: Attributes that are data, never behaviour or a way to load something.
SAFE_ATTRIBUTES = frozenset(
    {
        "alt", "title", "width", "height", "colspan", "rowspan", "headers", "scope", "span",
        "start", "datetime", "hreflang", "controls", "type", "media", "sizes", "rel", "lang",
    }
)  # fmt: skip
#: Attributes that hold a URL (a browser may load or navigate to it).
URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "poster", "cite", "action", "formaction", "data", "background", "lowsrc",
        "dynsrc", "ping", "longdesc", "codebase", "classid", "manifest", "icon", "profile",
        "usemap", "xlink:href", "archive",
    }
)  # fmt: skip
_STRIP = re.compile(r"[\t\n\r]")


def read_vectors(path: Path = VECTORS_FILE) -> list[str]:
    vectors = []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("# "):
            continue
        vector = line
        for name, char in _PLACEHOLDERS.items():
            vector = vector.replace(name, char)
        vectors.append(vector)
    return vectors


def url_problem(value: str, *, mailto: bool) -> str | None:
    """Why a URL in an attribute is unsafe as a browser reads it, or None."""
    url = _STRIP.sub("", value).strip(
        "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f "
        "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
    )
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"unparsable URL {value!r}"
    allowed = {"http", "https", "mailto"} if mailto else {"http", "https"}
    if parts.scheme.lower() not in allowed:
        return f"URL {value!r} is not absolute http(s){'/mailto' if mailto else ''}"
    if parts.scheme.lower() != "mailto" and not parts.netloc:
        return f"URL {value!r} has no host"
    return None


def srcset_urls(srcset: str) -> list[str]:
    """The URLs a browser takes from a ``srcset`` (the HTML standard's candidate parser, minus
    descriptor validation): a URL is a run without whitespace, trailing commas cut off, and its
    descriptors run to the next comma outside parentheses."""
    urls, pos, end, space = [], 0, len(srcset), " \t\n\f\r"
    while True:
        while pos < end and srcset[pos] in space + ",":
            pos += 1
        if pos >= end:
            return urls
        start = pos
        while pos < end and srcset[pos] not in space:
            pos += 1
        url = srcset[start:pos]
        urls.append(url.rstrip(","))
        if url.endswith(","):
            continue
        parens = False
        while pos < end and (parens or srcset[pos] != ","):
            parens = (parens or srcset[pos] == "(") and srcset[pos] != ")"
            pos += 1


def markup_problems(fragment: str) -> list[str]:
    """Everything in ``fragment`` that is not inert, as a browser would parse it."""
    problems: list[str] = []
    root = html5lib.parseFragment(fragment, treebuilder="etree", namespaceHTMLElements=True)
    for el in root.iter():
        if el is root or not isinstance(el.tag, str):
            continue
        ns, _, name = el.tag[1:].partition("}") if el.tag.startswith("{") else ("", "", el.tag)
        if ns != "http://www.w3.org/1999/xhtml":
            problems.append(f"element {name!r} in namespace {ns!r}")
            continue
        if name not in SAFE_ELEMENTS:
            problems.append(f"element {name!r}")
        for raw_attr, value in el.attrib.items():
            attr = raw_attr.rpartition("}")[2] if isinstance(raw_attr, str) else str(raw_attr)
            attr = attr.lower()
            if attr == "srcset":
                for url in srcset_urls(value):
                    problem = url_problem(url, mailto=False)
                    if problem:
                        problems.append(f"<{name} srcset>: {problem}")
            elif attr in URL_ATTRIBUTES:
                problem = url_problem(value, mailto=name == "a" and attr == "href")
                if problem:
                    problems.append(f"<{name} {attr}>: {problem}")
            elif attr not in SAFE_ATTRIBUTES:
                problems.append(f"<{name}> attribute {attr!r}")
    return problems


def text_problems(text: str) -> list[str]:
    """A field that should be text: as an HTML reader would render it, it must hold no element."""
    root = html5lib.parseFragment(text, treebuilder="etree", namespaceHTMLElements=False)
    return [f"element {el.tag!r} in text" for el in root.iter() if el is not root]
