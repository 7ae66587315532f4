"""feedbridge: republish directories of article dumps as Atom, RSS and JSON Feed."""

from __future__ import annotations

__version__ = "0.1.0"
