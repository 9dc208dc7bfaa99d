"""Output files of one topic: one JSONL file per arrival day, with corrupt lines mixed in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from udf.workload import formatting
from udf.workload.corrupt import corrupt_lines
from udf.workload.manifest import FileCounts, TopicStats
from udf.workload.params import DAY_MS, HOUR_MS, WorkloadParams

Columns = dict[str, np.ndarray]

_CORRUPT = 5  # this writer's stream of randomness (see generator.py)


class TopicWriter:
    """One output topic: its files (one per arrival day), its counts and its corrupt lines."""

    def __init__(self, name: str, topic_id: int, root: Path, params: WorkloadParams):
        self.name = name
        self.topic_id = topic_id
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.params = params
        self.stats = TopicStats(name)
        self.batch_no = 0
        self._day: int | None = None
        self._handle: Any = None

    def _file_for(self, day: int) -> FileCounts:
        label = dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + day).isoformat()
        rel = f"{self.name}/{self.name}-{label}.jsonl"
        if day != self._day:
            self.close()
            self._handle = open(self.dir.parent / rel, "wb")  # noqa: SIM115 - closed in close()
            self._day = day
        return self.stats.files.setdefault(rel, FileCounts())

    def write(self, day: int, lines: Any, sources: Callable[[np.ndarray], list[dict]]) -> None:
        """Write one batch of valid lines (arrival order) of one arrival day, plus corrupt ones."""
        n_valid = len(lines)
        share = self.params.corrupt_share
        before = self.stats.valid
        n_corrupt = int(share * (before + n_valid)) - int(share * before)
        rng = np.random.default_rng([self.params.seed, _CORRUPT, self.topic_id, self.batch_no])
        self.batch_no += 1
        if n_corrupt:
            picked = rng.integers(0, n_valid, n_corrupt)
            extra, kinds = corrupt_lines(self.name, sources(picked), rng)
            positions = np.sort(rng.choice(n_valid + n_corrupt, n_corrupt, replace=False))
            lines = formatting.interleave(lines, extra, positions)
            for kind in kinds:
                self.stats.corrupt[kind] += 1
        counts = self._file_for(day)
        self._handle.write(formatting.to_bytes(lines))
        counts.lines += n_valid + n_corrupt
        counts.valid += n_valid
        counts.corrupt += n_corrupt
        self.stats.lines += n_valid + n_corrupt
        self.stats.valid += n_valid

    def count(self, cols: Columns, day: int) -> None:
        s = self.stats
        s.duplicate_copies += int(cols["dup"].sum())
        s.late += int(((cols["arr"] - cols["ts"]) >= HOUR_MS).sum())
        s.cross_day += int((cols["ts"] // DAY_MS < day).sum())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._day = None
