"""Progress reporting for long builds: a tqdm bar on a terminal, nothing elsewhere.

The library reports progress through the ``Progress`` callable it is given (``no_progress`` by
default); only the CLI decides to draw, and only when stderr is a terminal and not ``-q``.
"""

from __future__ import annotations

from typing import Protocol, TextIO

#: A bar appears only once a phase has taken this long (seconds): short builds stay silent.
DELAY = 0.5


class Bar(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def __call__(self, total: int | None, desc: str, unit: str) -> Bar: ...


class _Silent:
    def update(self, n: int = 1) -> object:
        return None

    def close(self) -> None:
        return None


def no_progress(total: int | None, desc: str, unit: str) -> Bar:
    return _Silent()


def terminal_progress(stream: TextIO, *, delay: float = DELAY) -> Progress:
    """A Progress drawing tqdm bars on ``stream`` (imported only when a bar is wanted)."""

    def bar(total: int | None, desc: str, unit: str) -> Bar:
        from tqdm import tqdm

        made: Bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=stream,
            delay=delay,
            leave=False,
            dynamic_ncols=True,
        )
        return made

    return bar
