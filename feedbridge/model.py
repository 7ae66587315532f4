"""Frozen value types that flow through the pipeline: dump -> entry -> feed."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Provenance(StrEnum):
    """Where a dump's publication time came from (spec section 3), best first."""

    EPOCH = "epoch"
    DATE_LINE = "date-line"
    BODY = "body-date"
    MTIME = "mtime"


@dataclass(frozen=True, slots=True)
class Dump:
    """One parsed dump.  ``body`` is None when only the header was read."""

    path: str
    id: str
    url: str
    title: str
    published: datetime
    provenance: Provenance
    body: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Content:
    """A dump body made fit for a feed."""

    html: str
    summary: str
    image: str | None = None
    author: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed entry: everything the renderers need, nothing more."""

    id: str
    url: str
    title: str
    published: datetime
    source: str
    content: Content


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One output feed: which sources feed it and how it describes itself."""

    name: str
    title: str
    sources: tuple[str, ...]
    limit: int = 50
    link: str | None = None
    #: Whether the feed's whole history is published as RFC 5005 archive documents.
    archive: bool = True
    description: str | None = None
    language: str | None = None
    author: str | None = None
    #: WebSub hubs the feed names and notifies when its files change (config ``hub``).
    hubs: tuple[str, ...] = ()
    #: Byte budget of each of its documents (config ``max_feed_bytes``); None: no budget.
    max_feed_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class FeedUrls:
    """Absolute URLs of one feed's three files and the site it stands for."""

    atom: str
    rss: str
    json: str
    site: str


@dataclass(frozen=True, slots=True)
class History:
    """RFC 5005 links of one document.  A feed has only ``prev_*`` (its newest archive page);
    an archive page also has its own URLs (``self_*``) and ``next_atom`` (the newer page)."""

    prev_atom: str | None = None
    prev_json: str | None = None
    next_atom: str | None = None
    self_atom: str | None = None
    self_json: str | None = None
    #: A feed's: how many entries its archive pages hold in all; the newest page's name.
    archived: int = 0
    newest: str | None = None

    @property
    def is_archive(self) -> bool:
        return self.self_atom is not None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A file that matched a source pattern but is not a valid dump."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Dated:
    """A dump worth naming for its time: dated in the future, or dated by a fallback."""

    path: str
    published: datetime
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class FeedResult:
    name: str
    entries: int
    written: tuple[str, ...] = ()
    #: URLs of the documents written (WebSub topics to announce) and the hubs to tell.
    topics: tuple[str, ...] = ()
    hubs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What one build did.  Per-dump problems are data here, never exceptions."""

    feeds: tuple[FeedResult, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    future: tuple[Dated, ...] = ()
    fallbacks: tuple[Dated, ...] = ()
    scanned: int = 0
    parsed: int = 0
    #: Dumps in the archive (the index) after the build: accepted, rejected and future.
    archive: int = 0
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    #: One line each: what the build could not read or found odd (an unreadable folder, a
    #: dumps root without sources); the CLI prints them, the daemon logs them.
    warnings: tuple[str, ...] = ()

    @property
    def entries(self) -> int:
        return sum(f.entries for f in self.feeds)


def plain(value: object) -> object:
    """A value as ``dataclasses.asdict`` gives it for ``json.dumps`` (dataclasses as dicts of
    their fields, recursively; tuples and lists as lists), without asdict's deep copies: the
    fingerprints of every feed are taken on every build (asdict was 1 ms of a daemon's)."""
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {name: plain(getattr(value, name)) for name in _field_names(type(value))}
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def digest(data: object, default: Callable[[Any], object] | None = None) -> str:
    """The fingerprint of ``data`` (``plain`` values): SHA-256 of its JSON.  Equal
    fingerprints of everything a document shows mean equal bytes."""
    text = json.dumps(data, ensure_ascii=False, default=default)
    return hashlib.sha256(text.encode()).hexdigest()
