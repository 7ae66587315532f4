"""Pure content hygiene (spec section 5): third-party body HTML -> safe, absolute, feed-ready HTML.

Two stages.  lxml rewrites the structure (lazy images, iframes, ``noscript``, advertising,
empty wrappers, relative URLs) because those need a tree; nh3 (the Rust ``ammonia``
sanitizer) then applies an allow-list, so what reaches a feed reader is safe even if the first
stage missed something.

nh3 parses with html5ever, the parser browsers use, and libxml2 (lxml) parses some things
differently: ``<image>`` is ``<img>`` to a browser and an unknown element to libxml2, so it
would escape URL resolution.  The last stage therefore decides what is safe on html5ever's view:
every URL attribute nh3 keeps is resolved and checked once more there (``_url_guard``), and the
first stage renames what the two parsers disagree on (``image``, ``xmp``, ``plaintext``).
Cleaning is total: a body that the structural stage cannot handle is published as its text.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterable, Iterator, Set
from itertools import islice, product
from typing import cast

import nh3
from lxml import etree

from feedbridge.dump import collapse, strip_forbidden
from feedbridge.model import Content
from feedbridge.urls import resolve, resolve_srcset, to_uri, url_host

#: Characters of plain text kept in a summary (the text is mostly Chinese: characters, not words).
SUMMARY_LENGTH = 200

#: A plain libxml2 tree: lxml.html's element classes cost a Python lookup per element proxy.
_PARSER = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)

#: Dropped together with everything inside them.
_DROP = frozenset(
    {
        "script", "style", "template", "form", "input", "button", "select", "textarea",
        "option", "object", "applet", "frameset", "link", "meta", "base", "head", "title",
        "svg", "math", "canvas", "dialog", "param", "noembed", "noframes", "portal", "xml",
    }
)  # fmt: skip
#: Elements the two parsers see differently, renamed to what a browser makes of them: ``image`` is
#: ``img``; ``xmp`` and ``plaintext`` hold raw text that a browser shows as written, like a ``pre``
#: whose text is escaped (libxml2 already holds their content as one text node).
_RENAME = {"image": "img", "xmp": "pre", "plaintext": "pre", "listing": "pre"}
#: Embeds that become a plain link to what they embed.
_EMBEDS = frozenset({"iframe", "frame", "embed"})
#: Non-ASCII characters that ``str.lower`` makes an ASCII letter (the Kelvin sign is ``k``).
#: libxml2 lower-cases only ASCII in a tag name, so ``<lin\u212a>`` arrives as written and is a
#: ``link`` once lower-cased; a test checks this table against all of Unicode.
_FOLDS_TO_ASCII = {"k": "\u212a"}


def _spellings(names: Iterable[str]) -> frozenset[str]:
    """Every tag name libxml2 may give that lower-cases to one of ``names``."""
    found: set[str] = set()
    for name in names:
        choices = [(c, _FOLDS_TO_ASCII[c]) if c in _FOLDS_TO_ASCII else (c,) for c in name]
        found.update("".join(spelling) for spelling in product(*choices))
    return frozenset(found)


#: Containers that say nothing when empty.
_WRAPPERS = frozenset(
    {
        "div", "span", "section", "p", "font", "center", "article", "main", "header",
        "footer", "aside", "nav", "b", "i", "em", "strong", "small", "a", "li", "ul", "ol",
        "figure", "figcaption", "blockquote", "picture", "h1", "h2", "h3", "h4", "h5", "h6",
    }
)  # fmt: skip
#: Elements that carry meaning without any text.
_SELF_MEANING = frozenset({"img", "video", "audio", "br", "hr", "td", "th", "tr", "table"})
#: Tags the structural pass acts on (whatever their attributes), as libxml2 may spell them.
_STRUCTURAL = _spellings({*_RENAME, *_DROP, *_EMBEDS, "noscript", "picture"})
_LAZY_SRC = ("data-src", "data-lazy-src", "data-original", "data-actualsrc")
_LAZY_SRCSET = ("data-srcset", "data-lazy-srcset")
_URL_ATTRS = ("href", "src", "poster", "cite")
#: Elements whose URL attributes are resolved (every element nh3 lets keep a URL attribute).
_URL_ELEMENTS = ("img", "source", "video", "audio", "a", "blockquote", "q", "del", "ins")
#: Dropped by nh3 together with their content.
_CLEAN_CONTENT = frozenset({"script", "style", "template", "noscript", "textarea", "select"})
_PROXIES = frozenset({"images.weserv.nl"})
_BLOCKS = frozenset(
    {
        "p", "div", "section", "article", "main", "header", "footer", "aside", "li", "ul",
        "ol", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "td", "th",
        "table", "pre", "dd", "dt", "hr",
    }
)  # fmt: skip
#: Page furniture that is not part of the article's text summary.
_NOT_SUMMARY = frozenset({"address", "figure", "figcaption", "time", "small", "video", "audio"})

_TAGS = (nh3.ALLOWED_TAGS - {"map", "area"}) | {
    "video", "audio", "source", "section", "tfoot", "picture",
}  # fmt: skip
_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "hreflang", "title"},
    "img": {"src", "srcset", "sizes", "alt", "title", "width", "height"},
    "video": {"src", "poster", "controls", "width", "height"},
    "audio": {"src", "controls"},
    "source": {"src", "srcset", "type", "media", "sizes"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "time": {"datetime"},
    "ol": {"start"},
    "td": {"colspan", "rowspan", "headers"},
    "th": {"colspan", "rowspan", "headers", "scope"},
    "col": {"span"},
    "colgroup": {"span"},
    "abbr": {"title"},
}
_SCHEMES = {"http", "https", "mailto"}
#: An http(s) URL with a host, the only kind an image or a video may load.
_WEB_URL = re.compile(r"https?://[^/?#\\@:\s]", re.IGNORECASE)
#: A tag, for the text-only fallback; ``[^<>]`` keeps the search linear.
_TAG = re.compile(r"<[^<>]*>")
#: What a removed element becomes until serialization drops its tags: removing elements from
#: lxml's tree one by one costs time in the number of their siblings (``drop_tag`` looks each up
#: in its parent) and copies the text moved onto a neighbour again on every removal, quadratic
#: in hostile bodies (100,000 ``<a>`` took 53 s); renaming is constant time.
_GONE = "feedbridge-gone"
_GONE_START, _GONE_END = f"<{_GONE}>", f"</{_GONE}>"
#: What ``_remove_empty`` may drop: wrappers, and what is already gone.
_EMPTIABLE = _WRAPPERS | {_GONE}


def safe_url(value: str, base: str, *, mailto: bool = False) -> str | None:
    """``value`` made absolute against ``base`` if the result is an http(s) URL with a host
    (or, with ``mailto``, a mailto: URL); None for anything else."""
    url = resolve(strip_forbidden(value), base)
    if url is None:
        return None
    if _WEB_URL.match(url):
        return url
    return url if mailto and url[:7].lower() == "mailto:" else None


def _guarded(tag: str, attr: str, value: str, base: str, checked: Set[str]) -> str | None:
    """nh3's attribute filter: every URL attribute of html5ever's tree, whatever the first stage
    made of it, leaves absolute http(s) (mailto for links) or not at all.  Values in
    ``checked`` are what the first stage itself wrote after these same checks."""
    if value in checked and (tag == "a" or not value.startswith("mailto:")):
        return value
    if attr == "srcset":
        return resolve_srcset(value, base)
    if attr in _URL_ATTRS:
        return safe_url(value, base, mailto=tag == "a" and attr == "href")
    return value


class _GuardState(threading.local):
    """The base URL and checked values of the body being sanitized in this thread: the one
    ``nh3.Cleaner`` is built once (building it costs as much as cleaning a body), so its
    attribute filter reads them from here."""

    base: str = ""
    checked: Set[str] = frozenset()


_GUARD = _GuardState()


def _url_guard(tag: str, attr: str, value: str) -> str | None:
    return _guarded(tag, attr, value, _GUARD.base, _GUARD.checked)


def _set(el: etree._Element, attr: str, value: str) -> None:
    """Set an attribute; a character XML forbids (from a character reference) is left out."""
    el.set(attr, strip_forbidden(value))


def _is_placeholder(src: str | None) -> bool:
    return not src or src.strip().lower().startswith("data:") or src.strip() == "about:blank"


def _lazy_target(el: etree._Element) -> bool:
    return any(el.get(a) for a in _LAZY_SRC)


def _empty(el: etree._Element) -> None:
    """Remove an element's attributes, text and children, but not its tail: written back, a
    tail is checked again, and lxml refuses the control characters that libxml2 made of a
    character reference such as ``&#1;`` (the whole body fell back to its text)."""
    el.attrib.clear()
    el.text = None
    del el[:]


def _drop(el: etree._Element) -> None:
    """Remove an element and everything inside it, keeping the text that follows it."""
    if el.getparent() is not None:
        _empty(el)
        el.tag = _GONE


def _unwrap(el: etree._Element) -> None:
    """Remove an element's tag but keep its children and text."""
    if el.getparent() is not None:
        el.attrib.clear()
        el.tag = _GONE


def _embed_link(el: etree._Element, base: str) -> None:
    src = safe_url(el.get("src") or el.get("data-src") or "", base)
    if src is None:
        _drop(el)
        return
    title = el.get("title") or ""
    # A paragraph of its own, as the embed was a block of its own; made of the embed itself so
    # that its tail stays as it is (``_empty``).
    _empty(el)
    el.tag = "p"
    link = etree.SubElement(el, "a")
    _set(link, "href", src)
    link.text = strip_forbidden(collapse(title)) or src


def _promote_lazy(el: etree._Element) -> None:
    if _is_placeholder(el.get("src")):
        for attr in _LAZY_SRC:
            if el.get(attr):
                _set(el, "src", el.get(attr, ""))
                break
    if not el.get("srcset"):
        for attr in _LAZY_SRCSET:
            if el.get(attr):
                _set(el, "srcset", el.get(attr, ""))
                break


def _resolve_attrs(el: etree._Element, base: str, checked: set[str]) -> None:
    link = el.tag == "a"
    # One call for all attributes, a copy (safe to change them); str, as this parser makes them.
    for attr, value in cast("list[tuple[str, str]]", el.items()):
        if attr in _URL_ATTRS:
            url = safe_url(value, base, mailto=link and attr == "href")
            if url is None:
                del el.attrib[attr]
                continue
            if url != value:  # a URL is URI characters only: nothing for ``_set`` to strip
                el.set(attr, url)
            checked.add(url)
        elif attr == "srcset":
            resolved = resolve_srcset(value, base)
            if resolved is None:
                del el.attrib[attr]
                continue
            _set(el, attr, resolved)  # descriptors are the author's text
            checked.add(resolved)


def _is_ad(el: etree._Element) -> bool:
    return (
        el.get("data-e2e") == "advertisement"
        or el.get("aria-hidden") == "true"
        or "addtoany" in (el.get("class") or "")
    )


def _structural_targets(elements: Iterable[etree._Element]) -> list[etree._Element]:
    """The ``elements`` (in document order) that ``_restructure``'s first pass acts on:
    structural tags, and ads (attributes are read only where there are some)."""
    return [el for el in elements if el.tag in _STRUCTURAL or (len(el.attrib) and _is_ad(el))]


def _is_proxied(src: str) -> bool:
    return (url_host(src) or "") in _PROXIES


def _restructure(
    root: etree._Element, elements: list[etree._Element], base: str, checked: set[str]
) -> None:
    """Structural clean-up that needs a tree (``elements``: all below ``root``, in document
    order); nh3 does the allow-listing afterwards.  Every URL it writes is added to
    ``checked``."""
    for el in _structural_targets(elements):
        if el.getparent() is None or not _attached(el, root):
            continue  # inside an element dropped or replaced before it
        tag = el.tag.lower()
        if tag in _RENAME:
            el.tag = tag = _RENAME[tag]
        if tag in _DROP or _is_ad(el):
            _drop(el)
        elif tag == "noscript":
            # WordPress puts the real <img> here and a lazy placeholder right after it: keep one
            # copy.  BBC puts the only copy of its pictures here: unwrap, feed readers run no JS.
            nxt = el.getnext()
            if nxt is not None and nxt.tag == "img" and _lazy_target(nxt):
                _drop(el)
            else:
                _unwrap(el)
        elif tag in _EMBEDS:
            _embed_link(el, base)
        elif tag == "picture":
            for source in el.findall("source"):
                _drop(source)
            _unwrap(el)
    detached = False  # only dropping an <img> that holds elements detaches any
    for el in list(root.iter(*_URL_ELEMENTS)):
        if detached and not _attached(el, root):
            continue
        tag = el.tag
        if tag in ("img", "source", "video"):
            _promote_lazy(el)
        _resolve_attrs(el, base, checked)
        if tag == "a" and el.get("href") is None:
            _unwrap(el)  # a link that pointed nowhere safe is just its text
            continue
        if tag == "img":
            src = el.get("src")
            if src is None:
                detached = detached or len(el) > 0
                _drop(el)
            elif _is_proxied(src):
                # The proxy serves the picture; srcset keeps the hot-link-blocked originals.
                for attr in ("srcset", "sizes"):
                    if attr in el.attrib:
                        del el.attrib[attr]


def _attached(el: etree._Element, root: etree._Element) -> bool:
    node: etree._Element | None = el
    while node is not None:
        if node is root:
            return True
        node = node.getparent()
    return False


def _remove_empty(root: etree._Element) -> None:
    """Drop wrappers that hold nothing but whitespace and other such wrappers."""
    # Reverse document order visits children before their parents, so emptiness propagates up.
    # (Filtering tags in Python is cheaper than lxml matching this many names.)
    empty: set[etree._Element] = set()
    for el in reversed(list(root.iterdescendants())):
        if el.tag not in _EMPTIABLE:
            continue
        text = el.text
        if text and not text.isspace():
            continue
        if len(el) and not _all_empty(el, empty):
            continue
        empty.add(el)
        if el.tag != _GONE:
            _drop(el)


def _all_empty(el: etree._Element, empty: Set[etree._Element]) -> bool:
    """Every child of ``el`` is in ``empty`` and followed by whitespace at most."""
    for child in el:
        if child not in empty:
            return False
        tail = child.tail
        if tail and not tail.isspace():
            return False
    return True


def _serialize(root: etree._Element) -> str:
    """The inside of ``<body>`` as HTML, in one serializer call."""
    root.attrib.clear()  # a dump may carry its own <body ...>: its attributes are not content
    text = etree.tostring(root, method="html", encoding="unicode", with_tail=False)
    text = text.replace(_GONE_START, "").replace(_GONE_END, "")
    return text.removeprefix("<body>").removesuffix("</body>")


def _plain(text: str) -> str:
    return collapse(strip_forbidden(text))


def plain_summary(text: str) -> str:
    """Text collapsed, without characters XML forbids, cut to ``SUMMARY_LENGTH`` characters."""
    return _cut(_plain(text))


def _cut(plain: str) -> str:
    return plain[: SUMMARY_LENGTH - 1].rstrip() + "…" if len(plain) > SUMMARY_LENGTH else plain


def _children(el: etree._Element) -> Iterator[etree._Element]:
    """An element's children as the summary sees them: removed tags are gone (unwrapped ones
    give theirs), and so is page furniture."""
    for child in el:
        tag = child.tag
        if tag in _NOT_SUMMARY:
            continue
        if tag != _GONE:
            yield child
        elif len(child):
            yield from _children(child)


def _summary(root: etree._Element) -> str:
    """The body's text as a summary: blocks separated, page furniture and the feedx date
    marker at the top left out.  The walk stops once the summary is certain to be cut (the
    collapsed text of a prefix is a prefix of the whole's), so a long body costs no more than
    a short one."""
    skipped = None
    first = next(_children(root), None)
    if first is not None and first.tag == "div":
        inside = list(islice(_children(first), 2))
        if len(inside) == 1 and inside[0].tag == "i":
            skipped = first  # the feedx date marker at the top of the body
    parts: list[str] = []
    size, check_at = 0, SUMMARY_LENGTH + 2
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, el in walker:
        tag = el.tag
        if tag in _NOT_SUMMARY or el is skipped:  # removed: only the text after it counts
            if event == "start":
                walker.skip_subtree()
                continue
            text = el.tail
        else:
            if tag in _BLOCKS:
                parts.append(" ")  # blocks are separated, inline elements are not
            text = el.text if event == "start" else el.tail if el is not root else None
        if text:
            parts.append(text)
            size += len(text)
            if size >= check_at:
                plain = _plain("".join(parts))
                if len(plain) > SUMMARY_LENGTH:
                    return _cut(plain)
                check_at = 2 * size
    return plain_summary("".join(parts))


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    attributes=_ATTRIBUTES,
    url_schemes=_SCHEMES,
    clean_content_tags=_CLEAN_CONTENT,
    link_rel="noopener noreferrer",
    strip_comments=True,
    attribute_filter=_url_guard,
)


def sanitize(fragment: str, *, base_url: str, checked: Set[str] = frozenset()) -> str:
    """The allow-list pass, on html5ever's view of ``fragment``: only known tags and attributes
    survive, and every URL is absolute http(s) (or a mailto: link)."""
    _GUARD.base, _GUARD.checked = base_url, checked
    try:
        cleaned = _CLEANER.clean(fragment)
    finally:
        _GUARD.base, _GUARD.checked = "", frozenset()
    return strip_forbidden(cleaned)


def _structured(body: str, base_url: str) -> Content:
    """Both stages: the lxml rewrite, then the allow-list."""
    doc = etree.fromstring(f"<html><body>{body}</body></html>", _PARSER)
    if doc is None:
        raise ValueError("libxml2 made no document")  # clean_html falls back to the text
    root = doc.find("body")
    if root is None:
        return Content(html="", summary="")
    address = root.find(".//address")
    author = None
    if address is not None:
        author = collapse(strip_forbidden("".join(str(t) for t in address.itertext())))
    # Held until the end: lxml makes a Python proxy for an element the first time it is seen
    # and drops it when nothing refers to it; every later pass reuses these instead.
    elements = list(root.iterdescendants(etree.Element))
    checked: set[str] = set()
    _restructure(root, elements, base_url, checked)
    _remove_empty(root)
    src = next((img.get("src") for img in root.iter("img") if img.get("src")), None)
    image = to_uri(src) if src else None
    fragment = sanitize(_serialize(root), base_url=base_url, checked=checked)
    return Content(html=fragment, summary=_summary(root), image=image, author=author or None)


def _text_only(body: str) -> Content:
    """A body the structural stage failed on, as its text: tags cut out by a pattern that is
    linear in the input (no parser is trusted here), the rest escaped.  Safe, not tidy."""
    text = collapse(strip_forbidden(html.unescape(_TAG.sub(" ", body))))
    return Content(
        html=f"<p>{html.escape(text, quote=False)}</p>" if text else "",
        summary=plain_summary(text),
    )


def clean_html(body: str, *, base_url: str) -> Content:
    """A dump body -> Content(html, summary, first image, author).  Total: it returns a safe
    result for any string (at worst the body's text), so one body never stops a build."""
    body = strip_forbidden(body)
    if not body.strip():
        return Content(html="", summary="")
    try:
        return _structured(body, base_url)
    except Exception:  # a failure inside a library must not cost the entry its body
        pass
    return _text_only(body)
