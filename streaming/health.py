"""The health checks of the stream's rows: what batch writes in ``srm_p_value`` and ``health``.

Batch checks each experiment period of a date (docs/metrics.md §14, :mod:`results.health`):
the users of each group against the allocation the ramps configured (SRM), users in two
groups, and groups without users. The stream computes the same from its group totals,
with the same function (:func:`results.health.health_rows`):

- the users of each group: the rows' ``exposed``, and ``multiple_groups``;
- the cell's users per allocation interval of their ``t_u``: the per-user operator counts
  each exposure under ``interval``, named by the start of the interval it fell in (the
  snapshot's pieces bring it with each activation: :mod:`streaming.snapshot`);
- the allocation intervals and the groups of each period on the date: from the metadata
  store's ramps, as batch reads them, read again when the totals name an interval not known
  yet (a ramp during a run) and at least every :data:`RELOAD_SECONDS`.

Those columns equal batch's, so their SRM p-value is a fixed-horizon one: checked at every
write, it would raise false alarms far above ``srm_alpha``. The real-time health alerts
(:mod:`streaming.alerts.health`) take :meth:`HealthChecks.realtime` instead: per period,
the always-valid p-value of :func:`stats.srm.stratified` over the users of each (allocation
interval, group).

A ramp that appears in the store during a run cuts an interval, but the pipeline counts the
users exposed after it under the interval before it until its periods snapshot follows
(``periods_interval_seconds``; docs/streaming.md, "Known differences from batch"): judged
against the old allocation, those users would look like a mismatch. So an experiment's
real-time verdicts pause for ``settle_seconds`` after the checks first see a new ramp of it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import inf
from typing import Any

from metadata.periods import DAY_MS
from results.schema import ResultRow

RELOAD_SECONDS = 60.0
INTERVAL = "interval"  # the operator's kind (Contributions.java)


@dataclass(frozen=True)
class RealtimeHealth:
    """One period's real-time verdict: ``flags`` lists ``srm`` (always-valid p-value below
    the experiment's ``srm_alpha``) and ``multiple_groups``; ``units`` its users."""

    period_start: int
    p_value: float
    units: int
    alpha: float
    flags: str


def interval_users(
    totals: Mapping[tuple[Any, ...], Sequence[Any]],
) -> dict[int, dict[tuple[int, str], int]]:
    """The users the operator counted under ``interval``: period start -> (interval start,
    group) -> users."""
    cells: dict[int, dict[tuple[int, str], int]] = {}
    for (group, start, _, _, _, kind, name), v in totals.items():
        if kind == INTERVAL and v[0]:
            cells.setdefault(int(start), {})[(int(name), group)] = v[0]
    return cells


class HealthChecks:
    """The checks of one metadata store's experiments, at the stream's pace."""

    def __init__(
        self,
        platform: Any,
        window_ms: int,
        srm_alpha: Mapping[str, float],
        settle_seconds: float = 0.0,
    ):
        """``srm_alpha``: each experiment's ``analysis.srm_alpha`` (``StreamPlan.specs``);
        ``settle_seconds``: the pause of :meth:`realtime` after a new ramp (see above)."""
        self.platform = platform
        self.window_ms = window_ms
        self.srm_alpha = srm_alpha
        self.settle_seconds = settle_seconds
        self.seen: dict[tuple[str, int], float] = {}  # (experiment, interval start) -> when
        self._load(first=True)

    def _load(self, first: bool = False) -> None:
        from metadata.repository import MetadataStore
        from results.health import experiment_intervals

        with MetadataStore.for_home(self.platform) as store:
            experiments = store.experiments()
        self.intervals = experiment_intervals(experiments)
        self.index = {(i.experiment, i.start): i.index for own in self.intervals.values()
                      for i in own}  # fmt: skip
        self.periods = {  # experiment -> (group, start, end) of each period
            e.name: [(g.name, p.start, p.end) for g in e.groups for p in g.periods(self.window_ms)]
            for e in experiments
        }
        self.loaded_at = time.monotonic()
        for own in self.intervals.values():  # the first load's ramps: the first snapshot's too
            for i in own:
                self.seen.setdefault((i.experiment, i.start), -inf if first else self.loaded_at)

    def rows(
        self,
        experiment: str,
        d: int,
        totals: Mapping[tuple[Any, ...], Sequence[Any]],
        rows: Sequence[ResultRow],
    ) -> list[ResultRow]:
        """``rows`` (the experiment's rows of day ``d``) with ``srm_p_value`` and ``health``;
        ``totals`` are the group totals they were made from (:mod:`streaming.rows`)."""
        from results.health import health_rows

        users: dict[tuple[int, int], int] = {}  # (period start, interval start): every group's
        for start, of_groups in interval_users(totals).items():
            for (cut, _), n in of_groups.items():
                users[(start, cut)] = users.get((start, cut), 0) + n
        stale = time.monotonic() - self.loaded_at >= RELOAD_SECONDS
        if stale or any((experiment, cut) not in self.index for _, cut in users):
            self._load()
        counts: dict[tuple[str, int, int], dict[int, int]] = {}
        for (start, cut), n in users.items():
            index = self.index.get((experiment, cut))
            if index is not None:  # (a ramp the store no longer has: no expectation from it)
                cell = counts.setdefault((experiment, start, 0), {})
                cell[index] = cell.get(index, 0) + n
        day_start, day_end = d * DAY_MS, (d + 1) * DAY_MS
        period_groups: dict[tuple[str, int], list[str]] = {}
        for g, start, end in self.periods.get(experiment, []):
            if start < day_end and end > day_start:
                period_groups.setdefault((experiment, start), []).append(g)
        own = self.intervals.get(experiment, [])
        return health_rows(rows, counts, own, period_groups, self.srm_alpha)

    def realtime(
        self,
        experiment: str,
        totals: Mapping[tuple[Any, ...], Sequence[Any]],
        rows: Sequence[ResultRow],
    ) -> list[RealtimeHealth]:
        """Each period's real-time health from the group totals of one write (after
        :meth:`rows`, which loads any interval the totals name); none while the experiment
        settles after a new ramp."""
        import numpy as np

        from stats.srm import stratified
        from udf.config.catalog import DEFAULT_SRM_ALPHA

        cells = interval_users(totals)
        shares = {i.start: i.allocation for i in self.intervals.get(experiment, [])}
        now = time.monotonic()
        if any(now - self.seen[(experiment, s)] < self.settle_seconds for s in shares):
            return []
        alpha = self.srm_alpha.get(experiment, DEFAULT_SRM_ALPHA)
        out = []
        for start, cell in sorted(cells.items()):
            of_period = {g for g, s, _ in self.periods.get(experiment, []) if s == start}
            groups = sorted(of_period | {g for _, g in cell})
            cuts = sorted({cut for cut, _ in cell if cut in shares})
            counts = np.array([[cell.get((c, g), 0) for g in groups] for c in cuts], dtype=float)
            weights = np.array([[shares[c].get(g, 0.0) for g in groups] for c in cuts], dtype=float)
            p = stratified(counts, weights) if cuts and len(groups) > 1 else 1.0
            flags = ["srm"] if p < alpha else []
            if any(r.multiple_groups for r in rows if r.period_start == start and not r.segment):
                flags.append("multiple_groups")
            out.append(RealtimeHealth(start, p, sum(cell.values()), alpha, ",".join(flags)))
        return out
