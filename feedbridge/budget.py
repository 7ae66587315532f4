"""Pure: fit a feed document into a byte budget (``max_feed_bytes``).

A document over budget first loses the ``content`` of its oldest entries (their summary,
title and link stay), then its oldest entries, until it fits.  The trimming is one number ``k``
from 0 to 2n for n entries: the first n steps strip content oldest first, the next n drop
entries oldest first.  Size never grows with ``k``, so the least ``k`` that fits is found by
bisection, started at a guess from the entries' sizes calibrated by two cheap renders (all
content stripped, all entries dropped): usually five renders of a feed that is over budget, one
of a feed that is not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from feedbridge.model import Entry

#: Bytes of markup around each entry, beside its title, links and summary (a guess's weight).
_ENTRY_MARKUP = 400

Render = Callable[[Sequence[Entry]], bytes]


@dataclass(frozen=True, slots=True)
class Trim:
    """What fitting a document took: entries whose content went, entries that went."""

    stripped: int = 0
    dropped: int = 0
    #: The document is still over budget with no entry left (a budget below an empty feed).
    over: bool = False

    def __bool__(self) -> bool:
        return bool(self.stripped or self.dropped or self.over)

    def __str__(self) -> str:
        parts = []
        if self.stripped:
            parts.append(f"content of the {self.stripped} oldest entries left out")
        if self.dropped:
            parts.append(f"the {self.dropped} oldest entries left out")
        if self.over:
            parts.append("still over budget")
        return ", ".join(parts) or "nothing trimmed"


def oldest_first(entries: Sequence[Entry]) -> list[int]:
    """Indices of ``entries`` from the oldest (by time; later in the list when tied)."""
    return sorted(range(len(entries)), key=lambda i: (entries[i].published, -i))


def trimmed(entries: Sequence[Entry], order: Sequence[int], k: int) -> list[Entry]:
    """``entries`` after ``k`` trimming steps (see the module's doc)."""
    n = len(entries)
    strip = set(order[: min(k, n)])
    drop = set(order[: max(0, k - n)])
    return [
        replace(e, content=replace(e.content, html="")) if i in strip else e
        for i, e in enumerate(entries)
        if i not in drop
    ]


def _first_reaching(weights: Sequence[float], scale: float, need: float) -> int:
    """The fewest leading ``weights`` whose scaled sum reaches ``need`` (all of them at most)."""
    total = 0.0
    for k, weight in enumerate(weights, start=1):
        total += weight * scale
        if total >= need:
            return k
    return len(weights)


def _guess(
    entries: Sequence[Entry], order: Sequence[int], sizes: tuple[int, int, int], max_bytes: int
) -> int:
    """The number of steps the entries' own sizes say the document needs.

    ``sizes`` are the rendered bytes with nothing trimmed, with every content stripped and with
    every entry dropped: they calibrate the entries' weights to what the format really spends.
    """
    full, stripped, empty = sizes
    n = len(entries)
    if stripped <= max_bytes:
        weights = [len(entries[i].content.html) for i in order]
        scale = (full - stripped) / max(1, sum(weights))
        return _first_reaching(weights, scale, full - max_bytes)
    weights = [_entry_weight(entries[i]) for i in order]
    scale = (stripped - empty) / max(1, sum(weights))
    return n + _first_reaching(weights, scale, stripped - max_bytes)


def _entry_weight(entry: Entry) -> int:
    text = (entry.id, entry.url, entry.title, entry.content.summary, entry.content.image or "")
    return _ENTRY_MARKUP + sum(len(t) for t in text)


def fit(entries: Sequence[Entry], render: Render, max_bytes: int | None) -> tuple[bytes, Trim]:
    """The rendered document of the fewest trimming steps that keeps it within ``max_bytes``."""
    data = render(entries)
    if max_bytes is None or len(data) <= max_bytes or not entries:
        return data, Trim(over=max_bytes is not None and len(data) > max_bytes)
    n = len(entries)
    order = oldest_first(entries)
    rendered: dict[int, bytes] = {0: data}

    def at(k: int) -> bytes:
        if k not in rendered:
            rendered[k] = render(trimmed(entries, order, k))
        return rendered[k]

    def fits(k: int) -> bool:
        return len(at(k)) <= max_bytes

    lo, hi = 0, 2 * n  # at(lo) is over budget; the answer is in (lo, hi]
    if not fits(hi):
        return at(hi), Trim(stripped=n, dropped=n, over=True)
    if fits(n):
        hi = n
    else:
        lo = n
    # The guess, then its neighbour on the side the guess fell: right guesses cost two renders.
    sizes = (len(data), len(at(n)), len(at(2 * n)))
    probes = [_guess(entries, order, sizes, max_bytes)]
    while hi - lo > 1:
        guided = min(max(probes.pop(), lo + 1), hi - 1) if probes else None
        mid = (lo + hi) // 2 if guided is None else guided
        if fits(mid):
            hi = mid
        else:
            lo = mid
        if guided is not None and len(rendered) <= 4:
            probes.append(mid - 1 if hi == mid else mid + 1)
    return at(hi), Trim(stripped=min(hi, n), dropped=max(0, hi - n))
