"""Health checks of each experiment period in a slice: SRM, users in two groups, empty groups.

Checked per (experiment, period, ``day_in``) cell of a batch slice, and written on every
row of the cell (docs/metrics.md §14):

- **SRM**: the users of each group (a row's ``exposed``) against the allocation the ramps
  configured. Allocations may change with each ramp, so a user exposed at ``t_u`` is
  expected in group ``g`` with the share ``alloc_g(t) / sum alloc(t)`` in force at
  ``t_u`` (among the groups of the period); the expected counts are those shares summed
  over the cell's users, and Pearson's chi-square (:func:`stats.srm.chi_square`) gives
  ``srm_p_value``; ``srm`` is flagged below the experiment's ``analysis.srm_alpha``.
- **multiple groups**: users exposed to more than one group of the experiment
  (``multiple_groups`` on each row counts its own); flagged when any.
- **no data**: a group of the period without a single exposed user.

``health`` lists the failed checks: ``srm``, ``multiple_groups``, ``no_data:<group>``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from results.schema import ResultRow

INFINITY = 2**62


@dataclass(frozen=True)
class Interval:
    """A stretch of time over which an experiment's allocations stay the same."""

    experiment: str
    index: int
    start: int
    end: int
    allocation: dict[str, float]  # group -> allocation in force


def allocation_intervals(ramps: Iterable[tuple[str, str, int, float]]) -> list[Interval]:
    """Each experiment's time cut at every ramp of any of its groups; a group's allocation
    is that of its latest ramp at or before the interval's start (0 before its first)."""
    by_experiment: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for experiment, group, ts, allocation in ramps:
        by_experiment.setdefault(experiment, {}).setdefault(group, []).append((ts, allocation))
    out: list[Interval] = []
    for experiment, groups in sorted(by_experiment.items()):
        cuts = sorted({ts for history in groups.values() for ts, _ in history})
        for i, start in enumerate(cuts):
            end = cuts[i + 1] if i + 1 < len(cuts) else INFINITY
            shares: dict[str, float] = {}
            for group, history in groups.items():
                ordered = sorted(history)
                at = bisect_right([ts for ts, _ in ordered], start) - 1
                shares[group] = ordered[at][1] if at >= 0 else 0.0
            out.append(Interval(experiment, i, start, end, shares))
    return out


def experiment_intervals(experiments: Iterable[Any]) -> dict[str, list[Interval]]:
    """Each experiment's allocation intervals, from the ramps of the metadata store's
    ``ExperimentInfo`` records (:func:`allocation_intervals`)."""
    ramps = ((e.name, g.name, r.ramp_ts, r.allocation) for e in experiments for g in e.groups
             for r in g.ramps)  # fmt: skip
    out: dict[str, list[Interval]] = {}
    for interval in allocation_intervals(ramps):
        out.setdefault(interval.experiment, []).append(interval)
    return out


def expected_counts(
    counts: Mapping[int, int], intervals: Sequence[Interval], groups: Sequence[str]
) -> dict[str, float]:
    """Users expected per group of ``groups`` from the users counted per interval index."""
    by_index = {i.index: i for i in intervals}
    out = dict.fromkeys(groups, 0.0)
    for index, users in counts.items():
        shares = {g: by_index[index].allocation.get(g, 0.0) for g in groups}
        total = sum(shares.values())
        if total > 0:
            for g in groups:
                out[g] += users * shares[g] / total
    return out


Cell = tuple[str, int, int]  # experiment, period_start, day_in


def health_rows(
    rows: Sequence[ResultRow],
    interval_counts: Mapping[Cell, Mapping[int, int]],
    intervals: Sequence[Interval],
    period_groups: Mapping[tuple[str, int], Sequence[str]],
    srm_alpha: Mapping[str, float],
) -> list[ResultRow]:
    """The rows with ``srm_p_value`` and ``health`` of their cell filled in.

    ``interval_counts`` holds the cell's users per allocation interval; ``period_groups``
    the groups of each (experiment, period_start) in the slice.
    """
    groups = (
        GroupCell(r.experiment, r.period_start, r.day_in, r.group, r.exposed, r.multiple_groups)
        for r in rows if r.segment == ""
    )  # fmt: skip
    verdicts = health_verdicts(groups, interval_counts, intervals, period_groups, srm_alpha)
    return [
        r.updated(verdicts[c]) if (c := (r.experiment, r.period_start, r.day_in)) in verdicts
        else r
        for r in rows
    ]  # fmt: skip


@dataclass(frozen=True)
class GroupCell:
    """One group's users in a cell (the whole group, no segment), as its rows report them."""

    experiment: str
    period_start: int
    day_in: int
    group: str
    exposed: int
    multiple_groups: int


def health_verdicts(
    groups: Iterable[GroupCell],
    interval_counts: Mapping[Cell, Mapping[int, int]],
    intervals: Sequence[Interval],
    period_groups: Mapping[tuple[str, int], Sequence[str]],
    srm_alpha: Mapping[str, float],
) -> dict[Cell, dict[str, Any]]:
    """Each cell's ``srm_p_value`` and ``health`` (the columns :func:`health_rows` fills in)."""
    import numpy as np

    from stats.srm import chi_square
    from udf.config.catalog import DEFAULT_SRM_ALPHA

    exposed: dict[Cell, dict[str, int]] = {}
    multiple: dict[Cell, int] = {}
    for r in groups:
        cell = (r.experiment, r.period_start, r.day_in)
        exposed.setdefault(cell, {})[r.group] = r.exposed
        multiple[cell] = max(multiple.get(cell, 0), r.multiple_groups)
    verdicts: dict[Cell, dict[str, Any]] = {}
    for cell, seen in exposed.items():
        experiment, period_start, _ = cell
        groups_of = sorted(period_groups.get((experiment, period_start), seen))
        own = [i for i in intervals if i.experiment == experiment]
        expected = expected_counts(interval_counts.get(cell, {}), own, groups_of)
        observed = np.array([seen.get(g, 0) for g in groups_of], dtype=float)
        weights = np.array([expected[g] for g in groups_of], dtype=float)
        p = None
        if len(groups_of) > 1 and (weights > 0).sum() > 1:
            value = float(chi_square(observed, weights).p_value)
            p = None if value != value else value
        flags = []
        if p is not None and p < srm_alpha.get(experiment, DEFAULT_SRM_ALPHA):
            flags.append("srm")
        if multiple.get(cell, 0) > 0:
            flags.append("multiple_groups")
        flags += [f"no_data:{g}" for g in groups_of if seen.get(g, 0) == 0]
        verdicts[cell] = {"srm_p_value": p, "health": ",".join(flags)[:255]}
    return verdicts
