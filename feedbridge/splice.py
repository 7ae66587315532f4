"""Pure: a feed document put together from its entries' rendered bytes, kept between renders.

A new dump rewrites its feed's documents, and 49 of their 50 entries are the ones rendered
the time before: rendering them again is most of the daemon's work for the dump (feedgen
builds and serializes a tree of 50 full articles; BENCHMARKS.md, "Where a new dump's time
goes").  A document's bytes are its head, its entries' bytes joined by the whitespace that
separates siblings, and its tail; an entry's bytes depend on the entry and the feed's
fallback author only, not on its neighbours or its place.  So a ``Fragments`` keeps the
bytes of each entry of one document (one slot: a feed's Atom document, say), and the next
render renders only the entries it has not seen (or the newest, to get the head and tail)
and splices.

The cut is checked, not trusted: an entry's start and end tags are looked for in the
rendered bytes, and a document whose tags do not come exactly once per entry, in order,
separated by nothing but the separator, is not cut, and the caller renders it whole.  feedgen
escapes every text (an entry's tags can only be structure today), so this guards against
what the cut cannot see: a feedgen that writes CDATA, where an attribute of an article could
hold ``</item>`` as text, or an extension that writes an element of the same name.
Either way the bytes are those of rendering the whole document at once
(tests/test_splice.py checks it on the corpus, hostile bodies and fuzzed entries).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cut:
    """Where an entry starts and ends in a document: its element's tags."""

    start: bytes
    end: bytes


#: Atom's ``entry`` and RSS's ``item`` elements, as feedgen (lxml) writes them.
ATOM_ENTRY = Cut(b"<entry>", b"</entry>")
RSS_ITEM = Cut(b"<item>", b"</item>")


@dataclass(frozen=True, slots=True)
class Parts:
    """A document cut around its entries: ``head + sep.join(entries) + tail``."""

    head: bytes
    entries: tuple[bytes, ...]
    tail: bytes

    @property
    def sep(self) -> bytes:
        """What separates two entries: a newline and the first entry's indentation."""
        return b"\n" + self.head[self.head.rfind(b"\n") + 1 :]

    def join(self, entries: Sequence[bytes]) -> bytes:
        return self.head + self.sep.join(entries) + self.tail


def cut(document: bytes, where: Cut, count: int) -> Parts | None:
    """``document`` cut around its ``count`` entries, or None where the cut is not certain."""
    if count < 1:
        return None
    starts = find_all(document, where.start)
    ends = [at + len(where.end) for at in find_all(document, where.end)]
    if len(starts) != count or len(ends) != count:
        return None
    head = document[: starts[0]]
    parts = Parts(head, tuple(document[s:e] for s, e in zip(starts, ends, strict=True)), b"")
    sep = parts.sep
    for end, start in zip(ends, starts[1:], strict=False):
        if document[end:start] != sep:
            return None
    if any(s >= e for s, e in zip(starts, ends, strict=True)):
        return None
    return Parts(head, parts.entries, document[ends[-1] :])


def find_all(data: bytes, needle: bytes) -> list[int]:
    """Where ``needle`` starts in ``data``, each time, left to right (not overlapping)."""
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + len(needle))
    return found


class Fragments:
    """The rendered bytes of one document's entries, by entry key, from its last renders.

    Holds at most two renders' worth of entries (``2 n + 8`` for the most entries ``n`` a
    render had), so the trimming a byte budget tries (budget.py: content stripped from the
    oldest, then the oldest dropped) does not push out the untrimmed entries the next render
    starts from.
    """

    __slots__ = ("_bytes", "_most")

    def __init__(self) -> None:
        self._bytes: dict[Hashable, bytes] = {}
        self._most = 0

    def __len__(self) -> int:
        return len(self._bytes)

    def splice(
        self,
        entries: Sequence[T],
        keys: Sequence[Hashable],
        render: Callable[[Sequence[T]], bytes],
        where: Cut,
    ) -> bytes:
        """The document of ``entries``: ``render`` of those not kept (or of the first), cut
        and spliced with the kept bytes of the others.  ``render`` must give the head and tail
        of the whole document whichever entries it is given (the feed's ``updated`` is passed
        to it, not derived from the entries it gets)."""
        missing = [i for i, key in enumerate(keys) if key not in self._bytes]
        chosen = missing or [0]
        document = render([entries[i] for i in chosen])
        parts = cut(document, where, len(chosen))
        if parts is None:
            return render(entries)
        rendered = dict(zip((keys[i] for i in chosen), parts.entries, strict=True))
        spliced = parts.join([rendered.get(key) or self._bytes[key] for key in keys])
        self._keep(keys, rendered)
        return spliced

    def each(self, keys: Sequence[Hashable], render: Callable[[int], bytes]) -> list[bytes]:
        """The bytes of each key: kept, or ``render`` of its index (and kept)."""
        rendered = {key: render(i) for i, key in enumerate(keys) if key not in self._bytes}
        each = [rendered.get(key) or self._bytes[key] for key in keys]
        self._keep(keys, rendered)
        return each

    def _keep(self, keys: Sequence[Hashable], rendered: dict[Hashable, bytes]) -> None:
        kept = self._bytes
        kept.update(rendered)
        for key in keys:  # the ones just used move to the end: the newest to keep
            kept[key] = kept.pop(key)
        self._most = max(self._most, len(keys))
        excess = len(kept) - (2 * self._most + 8)
        if excess > 0:
            for key in list(kept)[:excess]:
                del kept[key]


class Slots:
    """``Fragments`` by document (a feed's Atom document, its newest archive page's ...)."""

    __slots__ = ("_slots",)

    def __init__(self) -> None:
        self._slots: dict[tuple[str, str], Fragments] = {}

    def slot(self, feed: str, document: str) -> Fragments:
        return self._slots.setdefault((feed, document), Fragments())

    def retain(self, feeds: set[str]) -> None:
        """Forget the documents of feeds that are gone."""
        for key in [key for key in self._slots if key[0] not in feeds]:
            del self._slots[key]
