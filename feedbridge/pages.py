"""Pure rendering of the web pages: a page per feed (``OUT/NAME/index.html``) and the index.

Jinja2 with autoescaping renders templates from the package's ``templates`` folder, or from
the configuration's ``templates`` folder first when it has one (a site restyles its pages
without forking).  What each template receives is documented in the README ("Web pages").

Pages carry no article HTML: titles, summaries and authors are text, escaped by Jinja2;
thumbnails are http(s) URLs or nothing; the one inline stylesheet is allowed by its hash in a
``Content-Security-Policy`` that allows nothing else but images, so nothing from a dump can
run in a page.

jinja2 is imported only when a page is rendered: a build with nothing to render stays light.
``fingerprint`` tells, without it, whether a page's bytes would change.
"""

from __future__ import annotations

import functools
import hashlib
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from feedbridge import __version__
from feedbridge.errors import ConfigError
from feedbridge.listing import GENERATOR
from feedbridge.model import Entry, FeedSpec, FeedUrls, History, digest, plain

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

#: The package's templates; a configured ``templates`` folder is searched before it.
PACKAGE_TEMPLATES = Path(__file__).resolve().parent / "templates"
BASE_TEMPLATE = "base.html"
FEED_TEMPLATE = "feed.html"
ARCHIVE_TEMPLATE = "archive.html"
#: One entry of a list, included by the feed and archive pages.
ENTRY_TEMPLATE = "entry.html"
INDEX_TEMPLATE = "index.html"
STYLE_TEMPLATE = "style.css"
#: Entries of a feed the index shows.
NEWEST = 3


@dataclass(frozen=True, slots=True)
class Headline:
    """One of the newest entries of a feed, as the index shows it."""

    title: str
    url: str
    published: datetime


@dataclass(frozen=True, slots=True)
class Listed:
    """One feed as the index shows it: everything the index page depends on."""

    spec: FeedSpec
    urls: FeedUrls
    entries: int
    newest: tuple[Headline, ...] = ()
    #: Its archive: entries in all, and the newest archive page (None: no archive).
    history: History | None = None


@dataclass(frozen=True, slots=True)
class FeedView:
    """A feed in a template (``feed`` on a feed page, each of ``feeds`` on the index)."""

    name: str
    title: str
    description: str | None
    language: str | None
    link: str | None
    author: str | None
    urls: FeedUrls
    path: str
    entries: int
    updated: datetime | None
    newest: tuple[Headline, ...]
    #: Entries the feed and its archive pages hold in all (0 without an archive).
    total: int = 0
    #: Its newest archive page, relative to the feed's folder (``archive/2024-05-1.html``).
    archive: str | None = None


@dataclass(frozen=True, slots=True)
class EntryView:
    """An entry on a feed page: text and http(s) URLs only."""

    title: str
    url: str
    published: datetime
    author: str | None
    image: str | None
    summary: str


# -- values templates see ---------------------------------------------------------------------


def iso_time(when: datetime) -> str:
    """``2024-01-02T03:04:05Z``: the ``datetime`` of a ``<time>``, as in the feeds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def readable_time(when: datetime) -> str:
    """``2024-01-02 03:04 UTC``: the same instant for a person."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def host(url: str) -> str:
    """The host of a URL, for showing a link's destination (``www.example.org``)."""
    return urlsplit(url).hostname or url


def breakable(url: str) -> Markup:
    """A URL as escaped text that may wrap after each ``/`` (``<wbr>``, which copies as
    nothing), so a long address wraps at its slashes on a phone rather than mid-word."""
    from markupsafe import Markup, escape

    return Markup("/<wbr>").join(escape(part) for part in url.split("/"))


def web_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL, else None: nothing else may be fetched."""
    if not url:
        return None
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def feed_path(spec: FeedSpec) -> str:
    """The feed's folder relative to the index: ``voa/``."""
    return quote(spec.name, safe="") + "/"


def feed_view(
    spec: FeedSpec,
    urls: FeedUrls,
    entries: int,
    newest: Sequence[Headline],
    history: History | None = None,
) -> FeedView:
    newest_page = history.newest if history else None
    return FeedView(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        language=spec.language,
        link=web_url(spec.link),
        author=spec.author,
        urls=urls,
        path=feed_path(spec),
        entries=entries,
        updated=max((h.published for h in newest), default=None),
        newest=tuple(newest),
        total=entries + history.archived if history else 0,
        archive=f"archive/{quote(newest_page)}.html" if newest_page else None,
    )


def entry_view(spec: FeedSpec, entry: Entry) -> EntryView:
    return EntryView(
        title=entry.title,
        url=entry.url,
        published=entry.published,
        author=entry.content.author or spec.author,
        image=web_url(entry.content.image),
        summary=entry.content.summary,
    )


def headlines(entries: Sequence[Entry]) -> tuple[Headline, ...]:
    return tuple(Headline(e.title, e.url, e.published) for e in entries[:NEWEST])


# -- the template environment -----------------------------------------------------------------


def _template_dirs(templates: Path | None) -> list[Path]:
    if templates is not None and not templates.is_dir():
        raise ConfigError(f"templates folder {templates} does not exist")
    return [templates, PACKAGE_TEMPLATES] if templates is not None else [PACKAGE_TEMPLATES]


def templates_digest(templates: Path | None) -> str:
    """A digest of every template a page can be made from (the user's, then the package's):
    a page whose context and templates are unchanged has unchanged bytes.  Computed again
    only when a template file's name, size or mtime changed (one stat each per call)."""
    files = tuple((folder, tuple(_stat_files(folder))) for folder in _template_dirs(templates))
    return _digest(files)


def _stat_files(folder: Path) -> list[tuple[str, int, int]]:
    found = []
    for path in sorted(folder.rglob("*")):
        st = path.stat()
        if stat.S_ISREG(st.st_mode):
            found.append((str(path.relative_to(folder)), st.st_size, st.st_mtime_ns))
    return found


@functools.lru_cache(maxsize=8)
def _digest(files: tuple[tuple[Path, tuple[tuple[str, int, int], ...]], ...]) -> str:
    h = hashlib.sha256(__version__.encode())
    for folder, names in files:
        for name, _, _ in names:
            h.update(name.encode() + b"\0")
            h.update(hashlib.sha256((folder / name).read_bytes()).digest())
        h.update(b"\1")
    return h.hexdigest()


def _autoescape(name: str | None) -> bool:
    """Everything is escaped but the stylesheet, which is CSS, not HTML."""
    return not (name or "").endswith(".css")


@functools.lru_cache(maxsize=4)
def _environment(templates: Path | None, digest: str) -> jinja2.Environment:
    """The environment for one state of the templates (``digest``): a template added to the
    user's folder must replace the package's one that an older environment has cached."""
    import jinja2

    loader = jinja2.ChoiceLoader(
        [jinja2.FileSystemLoader(str(folder)) for folder in _template_dirs(templates)]
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["iso"] = iso_time
    env.filters["readable"] = readable_time
    env.filters["host"] = host
    env.filters["breakable"] = breakable
    return env


def prepare(templates: Path | None) -> None:
    """Import jinja2 and compile every template now: a first build does it once, before it
    forks its scan workers (which render pages), instead of once in each of them."""
    import jinja2

    env = _environment(templates, templates_digest(templates))
    for name in (
        BASE_TEMPLATE, STYLE_TEMPLATE, FEED_TEMPLATE, INDEX_TEMPLATE, ARCHIVE_TEMPLATE,
        ENTRY_TEMPLATE,
    ):  # fmt: skip
        try:
            env.get_template(name)
        except jinja2.TemplateError as e:
            raise _template_error(e, name) from e


def _template_error(e: jinja2.TemplateError, name: str) -> ConfigError:
    """A broken template as one line naming it and, when known, its line."""
    import jinja2

    if isinstance(e, jinja2.TemplateSyntaxError):
        return ConfigError(f"template {e.filename or e.name or name}:{e.lineno}: {e.message}")
    return ConfigError(f"template {name}: {e.message or e}")


def _render(templates: Path | None, name: str, context: dict[str, Any]) -> bytes:
    """Render one template; a broken template is a ConfigError naming it and its line."""
    import jinja2
    from markupsafe import Markup

    try:
        env = _environment(templates, templates_digest(templates))
        style, csp = _style(env)
        text = env.get_template(name).render(
            context,
            style=Markup(style),
            csp=Markup(csp),
            generator=f"{GENERATOR} {__version__}",
        )
    except jinja2.TemplateError as e:
        raise _template_error(e, name) from e
    return text.encode("utf-8")


@functools.lru_cache(maxsize=4)
def _style(env: jinja2.Environment) -> tuple[str, str]:
    """The stylesheet of one state of the templates, and the page's CSP that allows it."""
    style = env.get_template(STYLE_TEMPLATE).render()
    if "</" in style:
        raise ConfigError(f"template {STYLE_TEMPLATE}: a stylesheet cannot contain '</'")
    return style, content_security_policy(style)


def content_security_policy(style: str) -> str:
    """Nothing may load or run but the article images and this page's own stylesheet and icon
    (a ``data:`` image: without one, browsers ask for ``/favicon.ico``, which OUT has not)."""
    import base64

    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode("ascii")
    return (
        "default-src 'none'; img-src https: http: data:; "
        f"style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


# -- the pages --------------------------------------------------------------------------------


def render_feed_page(
    spec: FeedSpec,
    entries: Sequence[Entry],
    urls: FeedUrls,
    *,
    site_title: str,
    templates: Path | None = None,
    history: History | None = None,
) -> bytes:
    """``OUT/NAME/index.html``: the feed's entries, in the feed's order, and how to subscribe;
    with ``history``, a link to its archive."""
    context = {
        "site_title": site_title,
        "lang": spec.language or "en",
        "feed": feed_view(spec, urls, len(entries), headlines(entries), history),
        "entries": [entry_view(spec, e) for e in entries],
    }
    return _render(templates, FEED_TEMPLATE, context)


def render_index_page(
    listed: Sequence[Listed], *, title: str, templates: Path | None = None
) -> bytes:
    """``OUT/index.html``: every feed, its newest entries, and how to subscribe."""
    context = {
        "site_title": title,
        "lang": "en",
        "feeds": [feed_view(f.spec, f.urls, f.entries, f.newest, f.history) for f in listed],
    }
    return _render(templates, INDEX_TEMPLATE, context)


@dataclass(frozen=True, slots=True)
class ArchiveView:
    """An archive page in its template (``page``): its name and its neighbours' pages
    (relative links, None at either end)."""

    name: str
    older: str | None
    newer: str | None


def render_archive_page(
    spec: FeedSpec,
    entries: Sequence[Entry],
    urls: FeedUrls,
    *,
    page: ArchiveView,
    site_title: str,
    templates: Path | None = None,
) -> bytes:
    """``OUT/NAME/archive/PAGE.html``: one archive page's entries, with links to the pages
    before and after it and to the feed's page."""
    context = {
        "site_title": site_title,
        "lang": spec.language or "en",
        "feed": feed_view(spec, urls, len(entries), ()),
        "page": page,
        "entries": [entry_view(spec, e) for e in entries],
    }
    return _render(templates, ARCHIVE_TEMPLATE, context)


def index_fingerprint(listed: Sequence[Listed], *, title: str, templates_key: str) -> str:
    """Everything the index page depends on; equal fingerprints mean equal bytes."""
    data = [templates_key, title, [plain(f) for f in listed]]
    return digest(data, default=iso_time)
