"""Pure: byte-stable precompressed twins of the files in OUT.

A twin is ``NAME.gz`` beside ``NAME``: gzip with no file name and a zero mtime in its header, at
a fixed level, so the same file always gives the same twin bytes (a rebuild changes nothing, a
static server's ETag of the twin stays valid).  nginx (``gzip_static on``) and WhiteNoise (the
``--serve`` server) send it to readers that accept gzip, at no CPU cost per request.

Brotli twins were measured and left out (BENCHMARKS.md, "Precompressed twins"): on the real
corpus they are 17 % smaller than these at quality 5 for 2.8 times the CPU, 24 % at quality 11
for 160 times, and need a compiled binding and a separate nginx module to be served statically.
"""

from __future__ import annotations

import gzip
from pathlib import Path

#: The twin's suffix, as nginx's gzip_static and WhiteNoise look for it.
GZIP_SUFFIX = ".gz"
#: nginx's own default.  On the real corpus level 1 makes feeds 2.55 times smaller at 16 ms a
#: MB, level 6 2.8 times at 47 ms a MB (and 12 times level 1's CPU on the generated archive
#: the scale benchmark builds): a cold build and the daemon's work per new dump stay cheap.
GZIP_LEVEL = 1


def gzip_twin(data: bytes) -> bytes:
    """The gzip twin of ``data``: same input, same bytes (no name, mtime 0, fixed level)."""
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def twin_path(path: Path) -> Path:
    return path.with_name(path.name + GZIP_SUFFIX)
