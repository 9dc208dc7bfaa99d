"""A paced feed: ``udf stream replay --rate EVENTS_PER_S`` releases the archive at a set rate.

Without a rate a replay feeds the whole archive in one round and Flink reads it as fast as
it can. With one, the runner feeds a round every :data:`TICK_SECONDS` holding what the
:class:`Pacer` allows by then (``rate * elapsed`` records in all), in event-time order: the
archive's hour files oldest first, both topics of an hour before the next hour, a file cut
after a whole line. A fixed data set then arrives like live traffic at a known rate, which
makes it a deterministic load test (the same records, the same rounds boundaries for the
same rate and clock) and lets the results sink look at a growing experiment many times.

The rate counts records of both topics (events and activations), as the progress does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streaming.feed import Chunk

TICK_SECONDS = 0.25
_BLOCK = 1 << 20


class Pacer:
    """How many records may be released now: ``rate * elapsed`` since the first call, minus
    those released already. ``clock`` is a monotonic clock in seconds (a fake one in tests)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError("the rate must be positive")
        self.rate = rate
        self.clock = clock
        self.started: float | None = None
        self.released = 0

    def allowance(self) -> int:
        now = self.clock()
        if self.started is None:
            self.started = now
        return max(0, int(self.rate * (now - self.started)) - self.released)

    def took(self, records: int) -> None:
        self.released += records


def take_lines(archive: Path, chunks: Sequence[Chunk], limit: int) -> tuple[list[Chunk], int]:
    """The first ``limit`` records of ``chunks`` in event-time order, and how many they are.

    Chunks are ordered by hour file (``dt=.../hour=.../part-N``) and topic; the last one
    taken is cut after its ``limit``-th remaining line, so a round never splits a line.
    """
    from dataclasses import replace

    taken: list[Chunk] = []
    left = limit
    for c in sorted(chunks, key=lambda c: (c.rel, c.topic)):
        if left <= 0:
            break
        end, lines = _cut(archive / c.topic / c.rel, c.start, c.end, left)
        if lines:
            taken.append(replace(c, end=end))
            left -= lines
    return taken, limit - left


def _cut(path: Path, start: int, end: int, most: int) -> tuple[int, int]:
    """The offset after at most ``most`` whole lines of ``path`` from ``start``, and the lines.

    ``[start, end)`` ends with a newline (every import does), so taking it all is whole lines.
    """
    lines = 0
    pos = start
    fd = os.open(path, os.O_RDONLY)
    try:
        while pos < end:
            block = os.pread(fd, min(_BLOCK, end - pos), pos)
            if not block:
                break
            need = most - lines
            count = block.count(b"\n")
            if count >= need:
                cut = -1
                for _ in range(need):
                    cut = block.index(b"\n", cut + 1)
                return pos + cut + 1, most
            lines += count
            pos += len(block)
    finally:
        os.close(fd)
    return pos, lines
