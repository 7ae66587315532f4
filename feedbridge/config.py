"""TOML configuration -> frozen, validated Config.  Every key is documented in the README."""

from __future__ import annotations

import difflib
import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from feedbridge.errors import ConfigError
from feedbridge.model import FeedSpec, FeedUrls
from feedbridge.urls import web_url

DEFAULT_LIMIT = 50
DEFAULT_PATTERN = "*.md"
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
_NAME = re.compile(r"[^/\\\x00-\x1f]+")

TOP_KEYS = {
    "title", "base_url", "dumps", "out", "state_dir", "pattern", "limit", "max_bytes",
    "auto_feeds", "interval", "serve", "feeds", "hub", "max_feed_bytes", "archive",
    "templates",
}  # fmt: skip
FEED_KEYS = {
    "title", "sources", "link", "description", "language", "author", "limit", "hub",
    "max_feed_bytes", "archive",
}  # fmt: skip
#: Each feed document's byte budget: what WebSub hubs and subscribers commonly accept as one
#: notification (flask-websub's default body limit), above a 50-entry feed of full articles.
DEFAULT_MAX_FEED_BYTES = 1024 * 1024
#: A budget below this cannot hold an empty feed's metadata.
MIN_MAX_FEED_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Config:
    """Settings for one output folder.  Paths are absolute (resolved against the config file)."""

    title: str = "feedbridge"
    base_url: str | None = None
    dumps: Path | None = None
    out: Path | None = None
    state_dir: Path | None = None
    pattern: str = DEFAULT_PATTERN
    limit: int = DEFAULT_LIMIT
    max_bytes: int = DEFAULT_MAX_BYTES
    auto_feeds: bool = True
    interval: float = 300.0
    serve: str | None = None
    hubs: tuple[str, ...] = ()
    max_feed_bytes: int = DEFAULT_MAX_FEED_BYTES
    #: Publish RFC 5005 archive documents of every feed (a feed's ``archive`` overrides).
    archive: bool = True
    feeds: tuple[FeedSpec, ...] = ()
    source: Path | None = None
    #: Folder of page templates searched before the package's (see pages.py).
    templates: Path | None = None


def _fail(path: Path | None, message: str) -> ConfigError:
    where = f"{path}: " if path else ""
    return ConfigError(f"{where}{message}")


#: What a TOML user calls each type.
_TOML_TYPES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "a table",
}


def toml_type(value: object) -> str:
    """``value``'s type as TOML names it: 'a string', 'an integer', 'a table' ..."""
    if isinstance(value, bool):  # first: a bool is also an int
        return "a boolean"
    for kind in (int, float, str, list, dict):
        if isinstance(value, kind):
            return _TOML_TYPES[kind]
    return f"a {type(value).__name__}"  # a date or time


def _typed(table: Mapping[str, Any], key: str, kind: type, where: str, src: Path | None) -> Any:
    value = table.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise _fail(src, f"{where}{key} must be {_TOML_TYPES[kind]}, not {toml_type(value)}")
    return value


def _flag(table: Mapping[str, Any], key: str, default: bool, where: str, src: Path | None) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise _fail(src, f"{where}{key} must be true or false")
    return value


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str, src: Path | None) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, sorted(allowed), n=1)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else f"; known keys: {', '.join(sorted(allowed))}"
        )
        raise _fail(src, f"unknown key {key!r} in {where or 'the top level'}{hint}")


def _web_url(url: str, what: str, src: Path | None) -> str:
    """A configured URL in the URI form feeds publish (``urls.web_url``: the rules of a
    dump's URL), or a ConfigError naming the key and why."""
    try:
        return web_url(url)
    except ValueError as e:
        raise _fail(src, f"{what} {url!r} must be an absolute http(s) URL ({e})") from e


def check_base_url(url: str, src: Path | None = None) -> str:
    uri = _web_url(url, "base_url", src)
    parts = urlsplit(uri)
    if parts.query or parts.fragment:
        raise _fail(src, f"base_url {url!r} must be an absolute http(s) URL without ? or #")
    return uri if uri.endswith("/") else uri + "/"


#: Files of OUT itself, and their twins: no feed folder may take their names.
_OUT_FILES = frozenset(
    name + suffix for name in ("index.html", "feeds.opml") for suffix in ("", ".gz")
)


def is_feed_name(name: str) -> bool:
    """Whether ``name`` can be a feed's folder in OUT: one visible path segment that is not
    one of OUT's own files (``index.html``, ``feeds.opml`` and their ``.gz`` twins)."""
    return bool(_NAME.fullmatch(name)) and not name.startswith(".") and name not in _OUT_FILES


def check_feed_name(name: str, src: Path | None = None) -> str:
    if not is_feed_name(name):
        raise _fail(src, f"feed name {name!r} cannot be a folder name in the output")
    return name


def _link(table: Mapping[str, Any], where: str, src: Path | None) -> str | None:
    """``link``: the site a feed stands for, published as its alternate link."""
    link = _typed(table, "link", str, where, src)
    return None if link is None else _web_url(link, f"{where}link", src)


def _hubs(table: Mapping[str, Any], where: str, src: Path | None) -> tuple[str, ...] | None:
    """``hub``: one WebSub hub URL or a list of them (None when the key is absent)."""
    value = table.get("hub")
    if value is None:
        return None
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _fail(src, f"{where}hub must be a URL or a list of URLs")
    return tuple(dict.fromkeys(_web_url(url, f"{where}hub", src) for url in urls))


def _max_feed_bytes(table: Mapping[str, Any], where: str, src: Path | None) -> int | None:
    value = _typed(table, "max_feed_bytes", int, where, src)
    if value is not None and value < MIN_MAX_FEED_BYTES:
        raise _fail(src, f"{where}max_feed_bytes must be at least {MIN_MAX_FEED_BYTES}")
    return value  # type: ignore[no-any-return]


def _feed(name: str, table: Any, defaults: Config, src: Path | None) -> FeedSpec:
    where = f"[feeds.{name}] "
    if not isinstance(table, dict):
        raise _fail(src, f"{where}must be a table, not {toml_type(table)}")
    _check_keys(table, FEED_KEYS, f"[feeds.{name}]", src)
    sources = table.get("sources", [name])
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list):
        raise _fail(src, f"{where}sources must be an array of strings, not {toml_type(sources)}")
    if not (sources and all(isinstance(s, str) for s in sources)):
        raise _fail(src, f"{where}sources must be a non-empty array of folder names or globs")
    limit = _typed(table, "limit", int, where, src)
    if limit is not None and limit < 1:
        raise _fail(src, f"{where}limit must be at least 1")
    return FeedSpec(
        name=check_feed_name(name, src),
        title=_typed(table, "title", str, where, src) or name,
        sources=tuple(sources),
        limit=limit or defaults.limit,
        link=_link(table, where, src),
        description=_typed(table, "description", str, where, src),
        language=_typed(table, "language", str, where, src),
        author=_typed(table, "author", str, where, src),
        hubs=defaults.hubs if (hubs := _hubs(table, where, src)) is None else hubs,
        max_feed_bytes=_max_feed_bytes(table, where, src) or defaults.max_feed_bytes,
        archive=_flag(table, "archive", defaults.archive, where, src),
    )


def parse_config(data: Mapping[str, Any], *, src: Path | None = None) -> Config:
    """A TOML document (as a dict) -> Config; relative paths are relative to ``src``'s folder."""
    _check_keys(data, TOP_KEYS, "", src)
    base = src.parent if src else Path.cwd()

    def path(key: str) -> Path | None:
        value = _typed(data, key, str, "", src)
        return (base / value).resolve() if value else None

    limit = _typed(data, "limit", int, "", src)
    if limit is not None and limit < 1:
        raise _fail(src, "limit must be at least 1")
    max_bytes = _typed(data, "max_bytes", int, "", src)
    if max_bytes is not None and max_bytes < 64:
        raise _fail(src, "max_bytes must be at least 64")
    interval = _typed(data, "interval", float, "", src)
    if interval is not None and interval <= 0:
        raise _fail(src, "interval must be positive")
    base_url = _typed(data, "base_url", str, "", src)
    cfg = Config(
        title=_typed(data, "title", str, "", src) or "feedbridge",
        base_url=check_base_url(base_url, src) if base_url else None,
        dumps=path("dumps"),
        out=path("out"),
        state_dir=path("state_dir"),
        pattern=_typed(data, "pattern", str, "", src) or DEFAULT_PATTERN,
        limit=limit or DEFAULT_LIMIT,
        max_bytes=max_bytes or DEFAULT_MAX_BYTES,
        auto_feeds=data.get("auto_feeds", True) is not False,
        interval=float(interval) if interval else 300.0,
        serve=_typed(data, "serve", str, "", src),
        hubs=_hubs(data, "", src) or (),
        max_feed_bytes=_max_feed_bytes(data, "", src) or DEFAULT_MAX_FEED_BYTES,
        archive=_flag(data, "archive", True, "", src),
        source=src,
        templates=path("templates"),
    )
    if "auto_feeds" in data and not isinstance(data["auto_feeds"], bool):
        raise _fail(src, f"auto_feeds must be true or false, not {toml_type(data['auto_feeds'])}")
    feeds = data.get("feeds", {})
    if not isinstance(feeds, dict):
        raise _fail(src, f"feeds must be a table of [feeds.NAME] tables, not {toml_type(feeds)}")
    specs = tuple(_feed(name, table, cfg, src) for name, table in feeds.items())
    return replace(cfg, feeds=specs)


def load_config(path: Path) -> Config:
    """Read and validate a TOML config file."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except OSError as e:
        raise _fail(path, f"cannot read: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise _fail(path, f"invalid TOML: {e}") from e
    return parse_config(data, src=path.resolve())


def resolve_feeds(config: Config, folders: Iterable[str]) -> list[FeedSpec]:
    """The feeds of this build: the declared ones, plus one per source folder not declared.

    Returns them sorted by name; a declared feed whose globs match no folder still exists
    (empty), so its subscribers keep a valid document.
    """
    folders = sorted(folders)
    feeds: dict[str, FeedSpec] = {}
    for spec in config.feeds:
        matched = tuple(f for f in folders if any(fnmatch.fnmatchcase(f, g) for g in spec.sources))
        feeds[spec.name] = replace(spec, sources=matched)
    if config.auto_feeds:
        for folder in folders:
            if folder not in feeds and is_feed_name(folder):
                feeds[folder] = FeedSpec(
                    name=folder,
                    title=folder,
                    sources=(folder,),
                    limit=config.limit,
                    hubs=config.hubs,
                    max_feed_bytes=config.max_feed_bytes,
                    archive=config.archive,
                )
    return [feeds[name] for name in sorted(feeds)]


def feed_urls(spec: FeedSpec, base_url: str) -> FeedUrls:
    prefix = base_url + quote(spec.name, safe="") + "/"
    return FeedUrls(
        atom=prefix + "atom.xml",
        rss=prefix + "rss.xml",
        json=prefix + "feed.json",
        site=spec.link or base_url,
    )
