"""The alert decision: an always-valid test per watched comparison, at each look.

A stream's comparisons are looked at every few minutes. A fixed-horizon test checked that
often rejects a true null far more often than alpha (docs/statistics.md), so each look
uses an always-valid method from :mod:`stats.sequential` — the mixture SPRT by default, or
the asymptotic confidence sequence — whose interval covers the true lift at every look at
once with probability ``1 - alpha``. A comparison is ``alerting`` at a look when that
interval excludes zero on the watched side (the method rejects "no change" and the lift
points the alarming way), and ``ok`` otherwise; under no effect, the chance that it is
ever ``alerting``, over any number of looks, is at most alpha.

Each look is judged on its own cumulative statistics (as the experiment's sequential
columns are); a look that allows no inference (too few units, an empty control, zero
variance) leaves the state as it was. Everything is computed from the rows' sufficient
statistics (``n``, ``sum``, ``sum_sq`` and, for ratio metrics, ``den_*`` and ``sum_xy``),
vectorized over the comparisons that share a method, level and kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from metadata.records import AlertKey, AlertLook, Findings
from results.schema import ResultRow
from streaming.alerts.rules import AlertPlan, Watch

if TYPE_CHECKING:
    from stats.sequential.result import SequentialResult

# Result rows that are cumulative through their date: the latest look holds all the data.
CUMULATIVE_TYPES = ("aggregated", "custom")

Pair = tuple[ResultRow | None, ResultRow, Watch]


def select_pairs(rows: Iterable[ResultRow], plan: AlertPlan) -> list[Pair]:
    """(control, treatment, watch) for each watched comparison at its latest date.

    Rows of non-cumulative types, unwatched metrics and (unless the rule asks) segment
    values are left out; a treatment without a control row on its date gets ``None``.
    """
    cells: dict[tuple[Any, ...], dict[str, ResultRow]] = {}
    latest: dict[tuple[Any, ...], str] = {}
    for row in rows:
        watch = plan.watch(row.experiment, row.metric)
        if watch is None or row.metric_type not in CUMULATIVE_TYPES:
            continue
        if row.segment and not watch.segments:
            continue
        comparison = (row.experiment, row.metric, row.period_start, row.segment, row.segment_value)
        cells.setdefault((*comparison, row.date), {})[row.group] = row
        latest[comparison] = max(latest.get(comparison, row.date), row.date)
    pairs: list[Pair] = []
    for comparison, day in sorted(latest.items()):
        groups = cells[(*comparison, day)]
        experiment, metric = comparison[0], comparison[1]
        control = next((r for g, r in groups.items() if (experiment, g) in plan.controls), None)
        watch = plan.watch(experiment, metric)
        assert watch is not None
        for group, row in sorted(groups.items()):
            if (experiment, group) not in plan.controls:
                pairs.append((control, row, watch))
    return pairs


def judge(pairs: Sequence[Pair], min_units: int = 2) -> list[AlertLook]:
    """The look at each pair: its state (None without inference) and what it found.

    A pair whose smaller group has fewer than ``min_units`` users allows no inference yet.
    """
    from stats.codes import Code
    from stats.lift import _NO_INFERENCE

    looks: list[AlertLook | None] = [None] * len(pairs)
    batches: dict[tuple[str, float, bool], list[int]] = {}
    for i, (_, treatment, watch) in enumerate(pairs):
        kind = (watch.method, watch.alpha, treatment.den_sum is not None)
        batches.setdefault(kind, []).append(i)
    for (method, alpha, is_ratio), idx in batches.items():
        result = _test(method, alpha, is_ratio, [pairs[i] for i in idx])
        cmp = result.comparison
        columns = {
            name: np.asarray(getattr(cmp, name), dtype=float).reshape(-1)
            for name in ("p_value", "lift_abs", "lift_rel", "ci_low", "ci_high")
        }
        codes = np.asarray(cmp.code).reshape(-1)
        reject = np.asarray(result.reject).reshape(-1)
        for j, i in enumerate(idx):
            control, treatment, watch = pairs[i]
            code = Code(int(codes[j]))
            lift = columns["lift_abs"][j]
            moved = ("decrease" if lift < 0 else "increase") if reject[j] else ""
            state: str | None = None
            smaller = min(int(treatment.n), int(control.n) if control else 0)
            if code not in _NO_INFERENCE and smaller >= min_units:
                alarming = bool(moved) and watch.direction in ("any", moved)
                state = "alerting" if alarming else "ok"
            found = Findings(
                day=date.fromisoformat(treatment.date),
                units=int(treatment.n) + (int(control.n) if control else 0),
                method=method,
                alpha=alpha,
                moved=moved,
                **{name: _number(values[j]) for name, values in columns.items()},
                status="" if code is Code.OK else code.label,
            )
            key = AlertKey(
                treatment.experiment,
                treatment.group,
                treatment.metric,
                treatment.period_start,
                treatment.segment,
                treatment.segment_value,
            )
            looks[i] = AlertLook(key, state, found)
    return [look for look in looks if look is not None]


def _test(method: str, alpha: float, is_ratio: bool, pairs: Sequence[Pair]) -> SequentialResult:
    from stats.sufficient import RatioStats, SampleStats

    stats: Any = RatioStats if is_ratio else SampleStats
    fields = _ratio_fields if is_ratio else _sample_fields
    control = stats.stack([stats(*fields(c)) for c, _, _ in pairs])
    treatment = stats.stack([stats(*fields(t)) for _, t, _ in pairs])
    if method == "confidence_sequence":
        from stats.sequential.confidence_sequence import asymptotic_cs

        return asymptotic_cs(control, treatment, alpha=alpha)
    from stats.sequential.msprt import msprt

    return msprt(control, treatment, alpha=alpha)


def _sample_fields(row: ResultRow | None) -> tuple[float, ...]:
    return (0.0, 0.0, 0.0) if row is None else (float(row.n), float(row.sum), float(row.sum_sq))


def _ratio_fields(row: ResultRow | None) -> tuple[float, ...]:
    if row is None:
        return (0.0,) * 6
    return (
        float(row.n),
        float(row.sum),
        float(row.sum_sq),
        float(row.den_sum or 0.0),
        float(row.den_sum_sq or 0.0),
        float(row.sum_xy or 0.0),
    )


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)
