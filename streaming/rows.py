"""Group totals of one (experiment, date) → the ``aggregated`` result rows batch would write.

The aggregation job emits, per group, period, date and segment value, the users exposed
(``exposed``), per event type the events, users with one, sum of squared counts, sum and sum
of squares of ``value`` (``type``), per ratio pair the sum of ``x * y`` (``pair``), and
per whole group its users also exposed to another group (``multi``: ``multiple_groups``),
and in experiments with CUPED the covariate's sums (``pre``, ``pre_xy``).
:func:`result_rows` picks from them what each metric needs, exactly as
``metric_types.compute._row`` picks from batch's group totals; a type without events in a
group is zero there, as for an exposed user without events. Comparisons are added by
:func:`results.comparisons.compare_groups` with the experiment's analysis settings, the
same call batch makes, so the comparison columns agree too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from metadata.periods import DAY_MS
from metric_types.plan import MetricPlan, Value
from results.analysis import look_of
from results.schema import ResultRow
from streaming.plan import METRIC_TYPE, StreamPlan

# (grp, period_start, period_end, segment, segment value, kind, name)
TotalKey = tuple[str, int, int, str, str, str, str]
# (cnt, users, cnt_sq, vsum, vsq, nonzero): nonzero users with a nonzero vsum term
Totals = tuple[int, int, int, float, float, int]
_ZERO: Totals = (0, 0, 0, 0.0, 0.0, 0)


def day_of(d: int) -> date:
    """The UTC date of day number ``d`` (days since the epoch)."""
    return datetime.fromtimestamp(d * DAY_MS / 1000, tz=UTC).date()


def result_rows(
    experiment: str,
    d: int,
    totals: Mapping[TotalKey, Totals],
    plan: StreamPlan,
    metrics: Iterable[MetricPlan],
    computed_at: int,
) -> list[ResultRow]:
    """The rows (without comparisons) of every metric of ``experiment`` through day ``d``."""
    day = day_of(d).isoformat()
    slots = sorted({k[:5] for k, v in totals.items() if k[5] == "exposed" and v[0] > 0})
    cuped = experiment in plan.pre_windows
    out = []
    for m in metrics:
        if m.numerator is None:
            continue
        segments = set(m.segments_of(experiment))
        pair = plan.pair_of(m) if m.denominator is not None else None
        for slot in slots:
            grp, start, end, segment, value = slot
            if segment and segment not in segments:
                continue
            n = totals[(*slot, "exposed", "")][0]
            multi = totals.get((grp, start, end, "", "", "multi", ""), _ZERO)[0]
            num = totals.get((*slot, "type", m.numerator.event_type), _ZERO)
            s, ss = _sums(num, m.numerator)
            extra: dict[str, Any] = {}
            if cuped and m.has_covariate:
                extra = _covariate(totals, slot, m.numerator)
            if m.denominator is not None and pair is not None:
                den = totals.get((*slot, "type", m.denominator.event_type), _ZERO)
                ds, dss = _sums(den, m.denominator)
                xy = _exact(totals.get((*slot, "pair", pair.id), _ZERO))[3]
                extra = {"den_sum": ds, "den_sum_sq": dss, "sum_xy": float(xy)}
            row = ResultRow(
                experiment=experiment, group=grp, metric=m.name, metric_type=METRIC_TYPE,
                period_start=start, period_end=end, date=day, day_in=0, look=look_of(day, start),
                segment=segment,
                segment_value=value, exposed=n, volume=int(num[0]), propensity=int(num[1]),
                n=n, sum=s, sum_sq=ss, **extra, multiple_groups=multi, source="stream",
                computed_at=computed_at,
            )  # fmt: skip
            out.append(row)
    return out


def _covariate(totals: Mapping[TotalKey, Totals], slot: tuple, value: Value) -> dict[str, float]:
    """The CUPED covariate's sums of a count or sum metric (docs/metrics.md §8.4)."""
    pre = _exact(totals.get((*slot, "pre", value.event_type), _ZERO))
    xy = _exact(totals.get((*slot, "pre_xy", value.event_type), _ZERO))
    if value.statistic == "sum":
        return {"pre_sum": float(pre[3]), "pre_sum_sq": float(pre[4]), "pre_sum_xy": float(xy[3])}
    return {"pre_sum": float(pre[0]), "pre_sum_sq": float(pre[2]), "pre_sum_xy": float(xy[0])}


def _exact(t: Totals) -> Totals:
    """``t`` with sums of exactly 0 where no user has a nonzero term: the stream adds and takes
    back doubles (a user's value moving to another day or segment value), which leaves a
    round-off where batch, summing each user's value once, has 0."""
    return t if t[5] else (*t[:3], 0.0, 0.0, 0)


def _sums(t: Totals, value: Value) -> tuple[float, float]:
    t = _exact(t)
    if value.statistic == "sum":
        return float(t[3]), float(t[4])
    return float(t[0]), float(t[2])
