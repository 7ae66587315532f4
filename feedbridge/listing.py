"""Pure rendering of the subscription list, ``feeds.opml``.

Kept apart from ``render.py`` so a build with no feed to re-render imports neither feedgen nor
lxml: it is rendered on every build (it is cheap) and written only if changed.  The index page
is a template (``pages.py``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from feedbridge.model import FeedSpec, FeedUrls

GENERATOR = "feedbridge"


def quoteattr(value: str) -> str:
    """An XML attribute value with its quotes, as ``xml.sax.saxutils.quoteattr`` writes it
    (which would import ``urllib.request`` and ``http.client`` into every start-up)."""
    value = html.escape(value, quote=False)
    value = value.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace('"', "&quot;") + '"'


def render_opml(feeds: Sequence[tuple[FeedSpec, FeedUrls, int]], *, title: str) -> bytes:
    """``feeds.opml``: the subscription list a reader can import in one go."""
    lines = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        '<opml version="2.0">',
        "  <head>",
        f"    <title>{html.escape(title, quote=False)}</title>",
        "  </head>",
        "  <body>",
    ]
    for spec, urls, _count in feeds:
        name = quoteattr(spec.title)
        lines.append(
            f'    <outline type="rss" text={name} title={name} xmlUrl={quoteattr(urls.atom)}'
            f" htmlUrl={quoteattr(urls.site)}/>"
        )
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")
