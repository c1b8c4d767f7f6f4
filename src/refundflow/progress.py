"""A progress bar for long work, shown only to a person watching a terminal.

``for item in progress(items, total=len(items), label="重放存档"): ...`` draws one line on
stderr, redrawn at most a few times a second, and erases it at the end. When stderr is not a
terminal (a log, a pipe, a service's journal) it writes nothing at all: logs stay one line per
event, not thousands of carriage returns.
"""

from __future__ import annotations

import sys
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sized
from typing import TextIO, TypeVar

T = TypeVar("T")

_WIDTH = 30  # cells of the bar itself
_EVERY = 0.2  # seconds between redraws: drawing must cost nothing next to the work


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    label: str = "",
    stream: TextIO | None = None,
) -> Iterator[T]:
    """Yield ``items`` unchanged, drawing a bar on ``stream`` (default stderr) if it is a tty.

    ``total``: how many items there will be (default ``len(items)`` when it has one); without
    it the line shows the count only.
    """
    out = sys.stderr if stream is None else stream
    if not _is_terminal(out):
        yield from items
        return
    if total is None and isinstance(items, Sized):
        total = len(items)
    started = time.monotonic()
    shown_at = 0.0
    done = 0
    width = 0
    try:
        for item in items:
            yield item
            done += 1
            now = time.monotonic()
            if now - shown_at >= _EVERY:
                shown_at = now
                width = _draw(out, _line(label, done, total, now - started), width)
        if done:
            _draw(out, _line(label, done, total, time.monotonic() - started), width)
    finally:
        if width:
            out.write("\r" + " " * width + "\r")  # leave the terminal as it was
            out.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def _line(label: str, done: int, total: int | None, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    head = f"{label} " if label else ""
    if not total:
        return f"{head}{done} ({rate:.0f}/s)"
    share = min(done / total, 1.0)
    filled = round(share * _WIDTH)
    left = (total - done) / rate if rate > 0 else 0.0
    bar = "█" * filled + "░" * (_WIDTH - filled)
    return f"{head}{bar} {done}/{total} {share:4.0%} 剩余约 {left:.0f} 秒"


def _draw(out: TextIO, line: str, previous: int) -> int:
    """Rewrite the line in place; returns its width in terminal cells (Chinese counts two)."""
    width = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)
    out.write("\r" + line + " " * max(0, previous - width))
    out.flush()
    return max(width, previous)
