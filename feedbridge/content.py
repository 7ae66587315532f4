"""Pure content hygiene (spec section 5): third-party body HTML -> safe, absolute, feed-ready HTML.

Two stages.  lxml rewrites the structure (lazy images, iframes, ``noscript``, advertising,
empty wrappers, relative URLs) because those need a tree; nh3 (the Rust ``ammonia``
sanitizer) then applies an allow-list, so what reaches a feed reader is safe even if the first
stage missed something.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import lxml.html
import nh3
from lxml import etree

from feedbridge.dump import collapse, strip_forbidden
from feedbridge.model import Content
from feedbridge.urls import resolve, resolve_srcset, to_uri

#: Characters of plain text kept in a summary (the text is mostly Chinese: characters, not words).
SUMMARY_LENGTH = 200

_PARSER = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)

#: Dropped together with everything inside them.
_DROP = frozenset(
    {
        "script", "style", "template", "form", "input", "button", "select", "textarea",
        "option", "object", "applet", "frameset", "link", "meta", "base", "head", "title",
        "svg", "math", "canvas", "dialog", "param",
    }
)  # fmt: skip
#: Embeds that become a plain link to what they embed.
_EMBEDS = frozenset({"iframe", "frame", "embed"})
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
_LAZY_SRC = ("data-src", "data-lazy-src", "data-original", "data-actualsrc")
_LAZY_SRCSET = ("data-srcset", "data-lazy-srcset")
_URL_ATTRS = ("href", "src", "poster", "cite")
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


def _is_placeholder(src: str | None) -> bool:
    return not src or src.strip().lower().startswith("data:") or src.strip() == "about:blank"


def _lazy_target(el: etree._Element) -> bool:
    return any(el.get(a) for a in _LAZY_SRC)


def _drop(el: etree._Element) -> None:
    """Remove an element and everything inside it, keeping the text that follows it."""
    if el.getparent() is not None:
        lxml.html.HtmlElement.drop_tree(el)


def _unwrap(el: etree._Element) -> None:
    """Remove an element's tag but keep its children and text."""
    if el.getparent() is not None:
        lxml.html.HtmlElement.drop_tag(el)


def _embed_link(el: etree._Element, base: str) -> None:
    src = resolve(el.get("src") or el.get("data-src") or "", base)
    if src is None or not src.lower().startswith(("http://", "https://")):
        _drop(el)
        return
    # A paragraph of its own, as the embed was a block of its own.
    block = etree.Element("p")
    link = etree.SubElement(block, "a", href=src)
    link.text = collapse(el.get("title") or "") or src
    block.tail = el.tail
    parent = el.getparent()
    if parent is not None:
        parent.replace(el, block)


def _promote_lazy(el: etree._Element) -> None:
    if _is_placeholder(el.get("src")):
        for attr in _LAZY_SRC:
            if el.get(attr):
                el.set("src", el.get(attr, ""))
                break
    if not el.get("srcset"):
        for attr in _LAZY_SRCSET:
            if el.get(attr):
                el.set("srcset", el.get(attr, ""))
                break


def _resolve_attrs(el: etree._Element, base: str) -> None:
    for attr in _URL_ATTRS:
        value = el.get(attr)
        if value is None:
            continue
        url = resolve(value, base)
        if url is None:
            del el.attrib[attr]
        else:
            el.set(attr, url)
    srcset = el.get("srcset")
    if srcset is not None:
        resolved = resolve_srcset(srcset, base)
        if resolved is None:
            del el.attrib["srcset"]
        else:
            el.set("srcset", resolved)


def _is_ad(el: etree._Element) -> bool:
    return (
        el.get("data-e2e") == "advertisement"
        or el.get("aria-hidden") == "true"
        or "addtoany" in (el.get("class") or "")
    )


def _restructure(root: etree._Element, base: str) -> None:
    """Structural clean-up that needs a tree; nh3 does the allow-listing afterwards."""
    for el in list(root.iter()):
        if el is root or not isinstance(el.tag, str):
            continue
        if el.getparent() is None or not _attached(el, root):
            continue
        tag = el.tag.lower()
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
    for el in list(root.iter("img", "source", "video", "audio", "a", "blockquote", "q")):
        if not _attached(el, root):
            continue
        if el.tag in ("img", "source", "video"):
            _promote_lazy(el)
        _resolve_attrs(el, base)
        if el.tag == "a" and el.get("href") is None:
            _unwrap(el)  # a link that pointed nowhere safe is just its text
            continue
        if el.tag == "img":
            src = el.get("src", "")
            if not src.lower().startswith(("http://", "https://")):
                _drop(el)
            elif (urlsplit(src).hostname or "") in _PROXIES:
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
    # Reverse document order visits children before their parents, so emptiness propagates up.
    for el in reversed(list(root.iter())):
        if el is root or not isinstance(el.tag, str) or el.tag not in _WRAPPERS:
            continue
        if len(el) == 0 and not (el.text or "").strip():
            _drop(el)


def _serialize(root: etree._Element) -> str:
    """The inside of ``<body>`` as HTML, in one serializer call."""
    root.attrib.clear()  # a dump may carry its own <body ...>: its attributes are not content
    text = etree.tostring(root, method="html", encoding="unicode", with_tail=False)
    return text.removeprefix("<body>").removesuffix("</body>")


def _summary(root: etree._Element) -> str:
    for el in list(root.iter(*_NOT_SUMMARY)):
        if _attached(el, root):
            _drop(el)
    first = root[0] if len(root) else None
    if first is not None and first.tag == "div" and len(first) == 1 and first[0].tag == "i":
        _drop(first)  # the feedx date marker at the top of the body
    parts: list[str] = []
    for event, el in etree.iterwalk(root, events=("start", "end")):
        if el.tag in _BLOCKS:
            parts.append(" ")  # blocks are separated, inline elements are not
        if event == "start":
            parts.append(el.text or "")
        elif el is not root:
            parts.append(el.tail or "")
    text = collapse("".join(parts))
    if len(text) > SUMMARY_LENGTH:
        text = text[: SUMMARY_LENGTH - 1].rstrip() + "…"
    return text


def sanitize(fragment: str) -> str:
    """The allow-list pass: only known tags, attributes and URL schemes survive."""
    cleaned = nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        clean_content_tags={"script", "style", "template", "noscript", "textarea", "select"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return strip_forbidden(cleaned)


def clean_html(body: str, *, base_url: str) -> Content:
    """A dump body -> Content(html, summary, first image, author)."""
    body = strip_forbidden(body)
    if not body.strip():
        return Content(html="", summary="")
    try:
        doc = lxml.html.document_fromstring(f"<html><body>{body}</body></html>", parser=_PARSER)
    except etree.ParserError:
        return Content(html="", summary="")
    root = doc.find("body")
    if root is None:
        return Content(html="", summary="")
    address = root.find(".//address")
    author = collapse("".join(str(t) for t in address.itertext())) if address is not None else None
    _restructure(root, base_url)
    _remove_empty(root)
    src = next((img.get("src") for img in root.iter("img") if img.get("src")), None)
    image = to_uri(src) if src else None
    fragment = sanitize(_serialize(root))
    return Content(html=fragment, summary=_summary(root), image=image, author=author or None)
