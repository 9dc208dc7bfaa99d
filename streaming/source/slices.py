"""Alignment of the archive part: history fed in event-time slices, all topics in lockstep.

Flink's filesystem source cannot join a watermark alignment group (it has no watermark
push-down, and its file reader cannot pause a split), so the feed does the aligning: it
publishes history in slices of ``max_drift / 2`` of event time, every topic's slice at once,
and publishes slice ``k + 1`` only once every topic has read all the records of the slices
before ``k`` and its watermark has caught up with them (:class:`TopicProgress`: what a test
or the pipeline's progress report tells). When slice ``k + 1`` appears, every topic's
watermark is at the end of slice ``k - 1``, and none can pass the end of slice ``k + 1``:
two slices, the drift, apart. Two slices are in flight, so
the job has work while the next is discovered (``monitor_seconds``).

The bound holds for topics with records throughout (a topic with no records in a slice
holds nothing back, as an idle Kafka partition does not). Records are cut out of an hour
file at the first line at or after the slice's end (files are in arrival order), so a
record that arrived out of order goes with the lines around it: the bound grows by the
out-of-orderness the archive already has.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from udf.archive.layout import HOUR_MS

if TYPE_CHECKING:
    from streaming.feed import Chunk, Round
    from streaming.source.feed import PartitionFeed

_BLOCK = 1 << 20


def take_until(
    archive: Path, chunks: Sequence[Chunk], until: int, timestamp_field: str = "ts"
) -> list[Chunk]:
    """The parts of ``chunks`` before event time ``until``: whole hours before it, none from
    hours at or after it, and the hour holding it cut before its first line at or after it."""
    from streaming.feed import _hour_start

    pattern = re.compile(
        rb'"' + re.escape(timestamp_field.encode()) + rb'"[ \t]*:[ \t]*(-?[0-9]{1,18})'
    )
    taken = []
    for c in chunks:
        hour = _hour_start(c.rel)
        if hour + HOUR_MS <= until:
            taken.append(c)
        elif hour < until:
            end = _cut_before(archive / c.topic / c.rel, c.start, c.end, until, pattern)
            if end > c.start:
                taken.append(replace(c, end=end))
    return taken


def _cut_before(path: Path, start: int, end: int, until: int, pattern: re.Pattern[bytes]) -> int:
    """The offset of the first line of ``[start, end)`` whose time is ``until`` or later (a
    line without a readable time counts as time 0, as the source reads it); ``end`` if none."""
    fd = os.open(path, os.O_RDONLY)
    try:
        pos, rest = start, b""
        while pos < end:
            block = rest + os.pread(fd, min(_BLOCK, end - pos), pos)
            base = pos - len(rest)
            pos += len(block) - len(rest)
            lines = block.split(b"\n")
            rest = lines.pop()  # an unfinished line (b"" after a newline)
            offset = base
            for line in lines:
                found = pattern.search(line)
                if found is not None and int(found.group(1)) >= until:
                    return offset
                offset += len(line) + 1
        return end
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TopicProgress:
    """How far the job has read a topic: records, the newest event time among them, and the
    watermark an operator after the source sees (None: none yet)."""

    records: int = 0
    max_ts: int | None = None
    watermark: int | None = None


@dataclass
class AlignedFeed:
    """Publishes a feed's history slice by slice (see the module's docstring).

    ``read`` tells how far the job has read each topic (:class:`TopicProgress`).
    :meth:`step` publishes the next slice when allowed: every topic has read all the records
    of the slices but the last, and its watermark has caught up with them (with the newest
    time it read, or the end of those slices, whichever is earlier). :attr:`done` once a
    slice reached past the newest hour.
    """

    feed: PartitionFeed
    max_drift_ms: int
    read: Callable[[], Mapping[str, TopicProgress]]
    timestamp_field: str = "ts"
    out_of_orderness_ms: int = 0  # watermarks trail the newest time by this
    done: bool = False
    _ends: list[int] = field(default_factory=list)  # each published slice's end
    _fed: list[dict[str, int]] = field(default_factory=list)  # records per topic through each slice
    _span: tuple[int, int] | None = None  # the archive's first and last hour (end), when known

    def __post_init__(self) -> None:
        self.feed.count_lines = True  # the barrier compares records fed with records read
        rounds = self.feed.rounds()
        ends = [r.until for r in rounds if r.until is not None]
        if ends:  # resumed: wait until all fed so far is read, then carry on after the last slice
            fed = {t: sum(r.lines.get(t, 0) for r in rounds) for t in self.feed.topics}
            self._ends, self._fed = [max(ends)] * 2, [fed, fed]

    def _caught_up(self) -> bool:
        """Every topic has read the slices but the last and its watermark is at their end, or
        it has read everything published (its watermark follows within an emission interval;
        an operator sees a watermark only with the next record, which may never come)."""
        read = self.read()
        end = self._ends[-2]
        for topic, n in self._fed[-2].items():
            p = read.get(topic, TopicProgress())
            if p.records >= self._fed[-1][topic]:
                continue
            if p.records < n:
                return False
            if n and p.max_ts is not None:
                due = min(end - 1, p.max_ts) - self.out_of_orderness_ms
                if p.watermark is None or p.watermark < due:
                    return False
        return True

    @property
    def slice_ms(self) -> int:
        return max(1, self.max_drift_ms // 2)

    def step(self) -> Round | None:
        """Publish the next slice if every topic has read through the one before the last."""
        if self.done:
            return None
        if len(self._fed) >= 2 and not self._caught_up():
            return None
        span = self._archive_span()
        if span is None:  # nothing archived yet
            return None
        end = (self._ends[-1] if self._ends else span[0]) + self.slice_ms
        fed = self.feed.publish(until=end, timestamp_field=self.timestamp_field)
        before = self._fed[-1] if self._fed else {t: 0 for t in self.feed.topics}
        lines = fed.lines if fed is not None else {}
        self._fed.append({t: before.get(t, 0) + lines.get(t, 0) for t in self.feed.topics})
        self._ends.append(end)
        self.done = end >= span[1]
        return fed

    def _archive_span(self) -> tuple[int, int] | None:
        if self._span is None:
            from streaming.feed import _hour_start, committed_sizes

            hours = [
                _hour_start(rel)
                for t in self.feed.topics
                for rel in committed_sizes(self.feed.archive, t)
            ]
            if hours:
                self._span = (min(hours), max(hours) + HOUR_MS)
        return self._span
