"""Pure: byte-stable precompressed twins of the files in OUT.

A twin is ``NAME.gz`` beside ``NAME``: gzip with no file name and a zero mtime in its header, at
a fixed level, so the same file always gives the same twin bytes (a rebuild changes nothing, a
static server's ETag of the twin stays valid).  nginx (``gzip_static on``) and WhiteNoise (the
``--serve`` server) send it to readers that accept gzip, at no CPU cost per request.

A feed document is compressed a piece at a time, much as pigz does it: each piece starts at an
entry (``<entry>``, ``<item>``, a JSON Feed item, an ``<article>``), is compressed on its own
with the two pieces before it as its dictionary (what a gzip reader has in its window then:
the twin is within 1.5 % of one made in one go) and flushed to a byte boundary (RFC 1951 lets
the blocks be joined; every gzip reader reads them).  A new dump changes one entry of a feed,
so its twin compresses the head, the new piece, the two after it and the tail, and takes the
others from a memo
keyed by the SHA-256 of their bytes and their window's (a collision would serve other text:
a cryptographic digest, 0.4 ms a MB).  The pieces are a function of the document's bytes
only: the same document, the same twin, memo or not.

Brotli twins were measured and left out (BENCHMARKS.md, "Precompressed twins"): on the real
corpus they are 17 % smaller than these at quality 5 for 2.8 times the CPU, 24 % at quality 11
for 160 times, and need a compiled binding and a separate nginx module to be served statically.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from collections import OrderedDict
from pathlib import Path

from feedbridge.splice import ATOM_ENTRY, RSS_ITEM, find_all

#: The twin's suffix, as nginx's gzip_static and WhiteNoise look for it.
GZIP_SUFFIX = ".gz"
#: nginx's own default.  On the real corpus level 1 makes feeds 2.55 times smaller at 16 ms a
#: MB, level 6 2.8 times at 47 ms a MB (and 12 times level 1's CPU on the generated archive
#: the scale benchmark builds): a cold build and the daemon's work per new dump stay cheap.
GZIP_LEVEL = 1
#: gzip's header with no name and mtime 0, ``XFL`` 4 (fastest) and ``OS`` 255 (unknown), as
#: ``gzip.compress(data, 1, mtime=0)`` writes it.
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
#: The last block of the stream: an empty fixed-Huffman block marked final.
_FINAL = b"\x03\x00"
#: Where a piece may start, by the kind of document: an RSS item, an Atom entry, a JSON Feed
#: item (JSON strings hold no raw newline, so this is structure), an article of a web page.
#: Text that only looks like one makes another piece: never a different twin for the same bytes.
_RSS, _ATOM = RSS_ITEM.start, ATOM_ENTRY.start  # where splice.py cuts them too
_JSON, _HTML = b'\n    {\n      "id"', b"<article"
#: A piece of text made of starts is at least this long (up to the next start).
_MIN_PIECE = 2048
#: What a piece is compressed against: the pieces before it, as many as this, and no more than
#: deflate's window.  Two keep the twin within 0.3 % (generated) and 1.5 % (real corpus) of
#: one stream; a new entry then changes the pieces of two entries after it, not of every
#: entry in 32 KiB (many, when entries are short).
_BEHIND = 2
_WINDOW = 32 * 1024
#: Compressed bytes the memo keeps (the least recently used go first): the pieces of the
#: documents a daemon rewrites, a few MB for ten feeds.
_MEMO_BYTES = 32 * 1024 * 1024


class _Memo:
    """Compressed pieces by the SHA-256 of their bytes; shared by the threads that write twins."""

    def __init__(self, capacity: int) -> None:
        self._pieces: OrderedDict[bytes, bytes] = OrderedDict()
        self._size = 0
        self._capacity = capacity
        self._lock = threading.Lock()

    def deflate(self, key: bytes, piece: bytes, window: bytes) -> bytes:
        """``piece`` compressed against ``window``; ``key`` names both."""
        with self._lock:
            found = self._pieces.get(key)
            if found is not None:
                self._pieces.move_to_end(key)
                return found
        made = _deflate(piece, window)
        with self._lock:
            if key not in self._pieces:
                self._pieces[key] = made
                self._size += len(made)
            while self._size > self._capacity:
                _, dropped = self._pieces.popitem(last=False)
                self._size -= len(dropped)
        return made


def _deflate(piece: bytes, window: bytes) -> bytes:
    if window:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=window)
    else:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)


_memo = _Memo(_MEMO_BYTES)


def starts(data: bytes) -> list[int]:
    """Where the pieces of ``data`` start: at each entry (see ``_start``), so that an entry
    added or removed leaves the other pieces as they were.  Text made of starts (more than
    one a KiB) is cut greedily into pieces of ``_MIN_PIECE`` at least instead."""
    found = [at for at in find_all(data, _start(data)) if at]
    if len(found) <= len(data) // 1024 + 64:
        return [0, *found]
    cuts = [0]
    for at in found:
        if at - cuts[-1] >= _MIN_PIECE:
            cuts.append(at)
    return cuts


def _start(data: bytes) -> bytes:
    """What starts a piece in ``data``: told from its first bytes."""
    if data.startswith(b"{"):
        return _JSON
    top = data[:512]
    return _RSS if b"<rss" in top else _ATOM if b"<feed" in top else _HTML


def gzip_twin(data: bytes) -> bytes:
    """The gzip twin of ``data``: same input, same bytes (no name, mtime 0, fixed level, the
    same pieces)."""
    cuts = starts(data)
    ends = [*cuts[1:], len(data)]
    digests = [hashlib.sha256(data[s:e]).digest() for s, e in zip(cuts, ends, strict=True)]
    body = []
    for i, (start, end) in enumerate(zip(cuts, ends, strict=True)):
        first = max(0, i - _BEHIND)
        low = max(cuts[first], start - _WINDOW)
        # The window is pieces first..i-1 from ``low``: their digests and the offset name it.
        name = struct.pack("<Q", low - cuts[first]) + b"".join(digests[first : i + 1])
        key = hashlib.sha256(name).digest()
        body.append(_memo.deflate(key, data[start:end], data[low:start]))
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return _HEADER + b"".join(body) + _FINAL + trailer


def twin_path(path: Path) -> Path:
    return path.with_name(path.name + GZIP_SUFFIX)
