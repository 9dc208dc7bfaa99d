"""The recently-ramped-groups job: snapshots of the aggregation periods for the Flink jobs.

The seed publishes a CSV of the groups ramped in the last three days every five minutes,
and the activation filter checks it every ten seconds. Here the periods come from the
metadata store's ramps through :func:`metadata.periods.aggregation_periods` (the function
batch uses), and every period is published, not only open ones: a replay of history needs
the old ones, and a re-ramp can re-open a group.

Each period is published in *pieces*, cut at the experiment's allocation intervals (the
stretches between two ramps of any of its groups: :func:`results.health.allocation_intervals`,
batch's SRM intervals), so that each activation the filter keeps carries the interval it
fell in, and the per-user operator can count users per interval of their ``t_u`` (the SRM
check's expected counts). A snapshot is written only when the pieces changed, as a new
*version* file ``vNNNNNNNN.jsonl`` holding the changed rows: each row is ``(experiment,
grp, period_start, interval_start, period_end, lo, hi, version, alive)``, the piece
``[lo, hi)`` of the period inside the interval; ``alive = false`` when a piece disappeared
(two periods merged after a ramp was added in between). Flink keeps the newest version per
(experiment, group, period start, interval start), so a re-ramp that extends a period's end
or splits an interval updates it and the join downstream re-evaluates exactly
(docs/streaming.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PeriodKey = tuple[str, str, int]  # experiment, group, period start
PieceKey = tuple[str, str, int, int]  # experiment, group, period start, interval start


@dataclass(frozen=True)
class Piece:
    """The part ``[lo, hi)`` of a period (ending at ``period_end``) inside one interval."""

    period_end: int
    lo: int
    hi: int


def current_pieces(home: Any, window_ms: int) -> dict[PieceKey, Piece]:
    """Every period of every group in the metadata store, cut at its experiment's allocation
    intervals."""
    from metadata.repository import MetadataStore
    from results.health import experiment_intervals

    with MetadataStore.for_home(home) as store:
        experiments = store.experiments()
    intervals = experiment_intervals(experiments)
    out: dict[PieceKey, Piece] = {}
    for e in experiments:
        for g in e.groups:
            for p in g.periods(window_ms):
                for i in intervals.get(e.name, []):
                    lo, hi = max(p.start, i.start), min(p.end, i.end)
                    if lo < hi:
                        out[(e.name, g.name, p.start, i.start)] = Piece(p.end, lo, hi)
    return out


def period_ends(pieces: dict[PieceKey, Piece]) -> dict[PeriodKey, int]:
    """The periods the pieces make: key -> period end."""
    return {(e, g, s): piece.period_end for (e, g, s, _), piece in pieces.items()}


class PeriodSnapshots:
    """The folder of period versions that the Flink source reads."""

    def __init__(self, root: Path):
        self.root = root

    def published(self) -> tuple[int, dict[PieceKey, Piece]]:
        """The last version and the pieces as of it."""
        version, pieces = 0, {}
        for path in sorted(self.root.glob("v*.jsonl")):
            for line in path.read_text().splitlines():
                row = json.loads(line)
                key = (row["experiment"], row["grp"], row["period_start"], row["interval_start"])
                if row["alive"]:
                    pieces[key] = Piece(row["period_end"], row["lo"], row["hi"])
                else:
                    pieces.pop(key, None)
                version = max(version, row["version"])
        return version, pieces

    def publish(self, pieces: dict[PieceKey, Piece]) -> int | None:
        """Write a new version with the rows that changed; the version, or None if none did."""
        self.root.mkdir(parents=True, exist_ok=True)
        version, old = self.published()
        version += 1

        def row(key: PieceKey, piece: Piece, alive: bool) -> str:
            e, g, start, interval = key
            return json.dumps({
                "experiment": e, "grp": g, "period_start": start, "interval_start": interval,
                **asdict(piece), "version": version, "alive": alive,
            })  # fmt: skip

        rows = [row(k, v, True) for k, v in sorted(pieces.items()) if old.get(k) != v]
        rows += [row(k, v, False) for k, v in sorted(old.items()) if k not in pieces]
        if not rows:
            return None
        target = self.root / f"v{version:08d}.jsonl"
        tmp = self.root / f".{target.name}.tmp"
        with tmp.open("w") as fh:
            fh.write("".join(r + "\n" for r in rows))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)  # appears whole: the Flink source never reads half a version
        return version
