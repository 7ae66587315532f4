"""TOML configuration -> frozen, validated Config.  Every key is documented in the README."""

from __future__ import annotations

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

DEFAULT_LIMIT = 50
DEFAULT_PATTERN = "*.md"
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
_NAME = re.compile(r"[^/\\\x00-\x1f]+")

TOP_KEYS = {
    "title", "base_url", "dumps", "out", "state_dir", "pattern", "limit", "max_bytes",
    "auto_feeds", "interval", "serve", "feeds", "archive", "templates",
}  # fmt: skip
FEED_KEYS = {"title", "sources", "link", "description", "language", "author", "limit", "archive"}


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
    #: Publish RFC 5005 archive documents of every feed (a feed's ``archive`` overrides).
    archive: bool = True
    feeds: tuple[FeedSpec, ...] = ()
    source: Path | None = None
    #: Folder of page templates searched before the package's (see pages.py).
    templates: Path | None = None


def _fail(path: Path | None, message: str) -> ConfigError:
    where = f"{path}: " if path else ""
    return ConfigError(f"{where}{message}")


def _typed(table: Mapping[str, Any], key: str, kind: type, where: str, src: Path | None) -> Any:
    value = table.get(key)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise _fail(src, f"{where}{key} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _flag(table: Mapping[str, Any], key: str, default: bool, where: str, src: Path | None) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise _fail(src, f"{where}{key} must be true or false")
    return value


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str, src: Path | None) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _fail(src, f"unknown key {unknown[0]!r} in {where or 'the top level'}")


def check_base_url(url: str, src: Path | None = None) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(src, f"base_url {url!r} must be an absolute http(s) URL")
    return url if url.endswith("/") else url + "/"


def check_feed_name(name: str, src: Path | None = None) -> str:
    if not _NAME.fullmatch(name) or name.startswith(".") or name in ("index.html", "feeds.opml"):
        raise _fail(src, f"feed name {name!r} cannot be a folder name in the output")
    return name


def _feed(name: str, table: Any, defaults: Config, src: Path | None) -> FeedSpec:
    where = f"[feeds.{name}] "
    if not isinstance(table, dict):
        raise _fail(src, f"{where}must be a table")
    _check_keys(table, FEED_KEYS, f"[feeds.{name}]", src)
    sources = table.get("sources", [name])
    if isinstance(sources, str):
        sources = [sources]
    if not (isinstance(sources, list) and sources and all(isinstance(s, str) for s in sources)):
        raise _fail(src, f"{where}sources must be a non-empty list of folder names or globs")
    limit = _typed(table, "limit", int, where, src)
    if limit is not None and limit < 1:
        raise _fail(src, f"{where}limit must be at least 1")
    return FeedSpec(
        name=check_feed_name(name, src),
        title=_typed(table, "title", str, where, src) or name,
        sources=tuple(sources),
        limit=limit or defaults.limit,
        link=_typed(table, "link", str, where, src),
        description=_typed(table, "description", str, where, src),
        language=_typed(table, "language", str, where, src),
        author=_typed(table, "author", str, where, src),
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
        archive=_flag(data, "archive", True, "", src),
        source=src,
        templates=path("templates"),
    )
    if "auto_feeds" in data and not isinstance(data["auto_feeds"], bool):
        raise _fail(src, "auto_feeds must be true or false")
    feeds = data.get("feeds", {})
    if not isinstance(feeds, dict):
        raise _fail(src, "feeds must be a table of [feeds.NAME] tables")
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
            if folder not in feeds and _NAME.fullmatch(folder) and not folder.startswith("."):
                feeds[folder] = FeedSpec(
                    name=folder,
                    title=folder,
                    sources=(folder,),
                    limit=config.limit,
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
