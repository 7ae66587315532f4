"""The one exception tree.  Every error feedbridge raises on purpose is a FeedbridgeError."""

from __future__ import annotations


class FeedbridgeError(Exception):
    """Root of every error feedbridge raises on purpose."""


class ConfigError(FeedbridgeError, ValueError):
    """The configuration file or a command-line setting is invalid."""


class SourceError(ConfigError):
    """The dumps folder is missing, not a folder or cannot be read.  Raised before anything
    is written or removed: a missing input never empties the feeds."""


class CorruptIndexError(FeedbridgeError):
    """The index holds something it cannot have written: damaged pages, undecodable values.
    A build that meets it sets the index aside and rebuilds from the dumps."""


class DumpError(FeedbridgeError, ValueError):
    """A file that should be a dump breaks the grammar.

    Carries the path, the 1-based line number and a human reason, so that the message is
    ``path:line: reason`` -- the form editors and CI logs understand.
    """

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class PublishError(FeedbridgeError, OSError):
    """The output folder or a file in it could not be created or written (the old file, if
    any, is left intact)."""


class StateError(FeedbridgeError, OSError):
    """The state folder (index, lock, status) could not be created, read or written."""


class LockedError(FeedbridgeError):
    """Another feedbridge process holds the output folder."""

    def __init__(self, out: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"{out} is in use by {who} (feedbridge lock)")
        self.out = out
        self.pid = pid
