"""What the UI views show, computed from the metadata and results stores (no web code here).

- :func:`tracking_rows`: every metric-day with its owners and how late it is against its
  SLA (the owner digests' rule: due ``sla_hours`` after the day's data ends);
- :func:`group_series`: per group and day, the mean per exposed user (``sum / n``) and the
  propensity (``propensity / exposed``), each with a normal confidence interval;
- :func:`latest_comparisons`: each treatment comparison at its latest date, the store's
  columns as they are;
- :func:`srm_checks`: sample-ratio mismatch of the exposed users against the groups'
  current allocations (Pearson chi-square, :func:`stats.srm.chi_square`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from math import sqrt
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metadata.records import ExperimentInfo, MetricInfo, RunInfo
    from results.schema import ResultRow

SRM_ALPHA = 0.001  # gbstats' and most platforms' threshold for a sample-ratio warning


def tracking_rows(
    runs: Iterable[RunInfo], metrics: Sequence[MetricInfo], now: datetime
) -> list[dict[str, Any]]:
    """One row per metric-day: state, reason, owners, due time and hours past due."""
    catalog = {m.name: m for m in metrics}
    rows = []
    for run in runs:
        metric = catalog.get(run.metric)
        sla = metric.sla_hours if metric else 30.0
        due = datetime.combine(run.ds + timedelta(days=1), datetime.min.time(), UTC) + timedelta(
            hours=sla
        )
        until = (run.finished_at or run.updated_at) if run.state == "done" else now
        late = (_utc(until) - due).total_seconds() / 3600
        rows.append(
            {
                "metric": run.metric,
                "metric_type": run.metric_type,
                "ds": run.ds.isoformat(),
                "experiment": run.scope,
                "state": run.state,
                "reason": run.reason or "",
                "owners": list(metric.owners) if metric else [],
                "attempt": run.attempt,
                "since": _utc(run.updated_at).strftime("%Y-%m-%d %H:%M"),
                "due": due.strftime("%Y-%m-%d %H:%M"),
                "late_hours": round(late, 1) if late > 0 and run.state != "skipped" else 0.0,
                "dag_run_id": run.dag_run_id or "",
            }
        )
    return rows


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None


NONE = Estimate(None, None, None)


def mean_estimate(n: float, total: float, total_sq: float, alpha: float) -> Estimate:
    """Mean per unit with a normal interval from ``(n, sum, sum of squares)``."""
    if n <= 0:
        return Estimate(None, None, None)
    mean = total / n
    if n < 2:
        return Estimate(mean, None, None)
    variance = max(total_sq - total * total / n, 0.0) / (n - 1)
    half = NormalDist().inv_cdf(1 - alpha / 2) * sqrt(variance / n)
    return Estimate(mean, mean - half, mean + half)


def rate_estimate(hits: float, n: float, alpha: float) -> Estimate:
    """A proportion with its normal (Wald) interval."""
    if n <= 0:
        return Estimate(None, None, None)
    p = hits / n
    half = NormalDist().inv_cdf(1 - alpha / 2) * sqrt(p * (1 - p) / n)
    return Estimate(p, p - half, p + half)


def group_series(rows: Iterable[ResultRow], metric: str, alpha: float) -> dict[str, dict[str, Any]]:
    """For each source, the dates and per group the mean and propensity series with bounds.

    Only whole-group rows (no segment) of the latest period of each date are used.
    """
    picked: dict[tuple[str, str, str], ResultRow] = {}
    for row in rows:
        if row.metric != metric or row.segment:
            continue
        key = (row.source, row.date, row.group)
        if key not in picked or row.period_start > picked[key].period_start:
            picked[key] = row
    out: dict[str, dict[str, Any]] = {}
    for source in sorted({s for s, _, _ in picked}):
        dates = sorted({d for s, d, _ in picked if s == source})
        groups: dict[str, dict[str, list[float | None]]] = {}
        for group in sorted({g for s, _, g in picked if s == source}):
            series: dict[str, list[float | None]] = {
                k: [] for k in ("mean", "mean_low", "mean_high", "rate", "rate_low", "rate_high")
            }
            for day in dates:
                found = picked.get((source, day, group))
                m, r = (
                    (mean_estimate(found.n, found.sum, found.sum_sq, alpha),
                     rate_estimate(found.propensity, found.exposed, alpha))
                    if found else (NONE, NONE)
                )  # fmt: skip
                for name, value in (("mean", m), ("rate", r)):
                    series[name].append(value.value)
                    series[f"{name}_low"].append(value.low)
                    series[f"{name}_high"].append(value.high)
            groups[group] = series
        out[source] = {"dates": dates, "groups": groups}
    return out


def latest_comparisons(rows: Iterable[ResultRow], *, segments: bool) -> list[ResultRow]:
    """Treatment rows (with a comparison) at the latest date of each comparison.

    ``segments`` picks segment rows instead of whole-group rows.
    """
    latest: dict[tuple[Any, ...], ResultRow] = {}
    for row in rows:
        if row.status == "" and row.p_value is None and row.lift_abs is None:
            continue  # a control row, or a treatment row without any comparison
        if bool(row.segment) != segments:
            continue
        key = (row.source, row.metric, row.group, row.period_start, row.day_in, row.segment,
               row.segment_value)  # fmt: skip
        if key not in latest or row.date > latest[key].date:
            latest[key] = row
    return sorted(latest.values(), key=lambda r: (r.source, r.metric, r.group, r.segment,
                                                  r.segment_value, r.period_start))  # fmt: skip


def srm_checks(rows: Iterable[ResultRow], experiment: ExperimentInfo) -> list[dict[str, Any]]:
    """One check per source and period at its latest date: exposed users against allocations."""
    import numpy as np

    from stats.srm import chi_square

    exposed: dict[tuple[str, int], dict[str, tuple[str, int]]] = {}
    for row in rows:
        if row.segment:
            continue
        cell = exposed.setdefault((row.source, row.period_start), {})
        if row.group not in cell or row.date > cell[row.group][0]:
            cell[row.group] = (row.date, row.exposed)
    checks = []
    for (source, period_start), by_group in sorted(exposed.items()):
        day = max(d for d, _ in by_group.values())
        groups = sorted(g.name for g in experiment.groups)
        counts = [by_group.get(g, (day, 0))[1] if by_group.get(g, ("", 0))[0] == day else 0
                  for g in groups]  # fmt: skip
        weights = [_allocation(experiment, g, day) for g in groups]
        result = chi_square(np.array(counts, dtype=float), np.array(weights, dtype=float))
        p = float(result.p_value)
        checks.append(
            {
                "source": source,
                "period_start": datetime.fromtimestamp(period_start / 1000, UTC).strftime(
                    "%Y-%m-%d %H:%M"
                ),
                "date": day,
                "groups": groups,
                "exposed": counts,
                "allocation": weights,
                "p_value": None if p != p else p,
                "mismatch": p == p and p < SRM_ALPHA,
            }
        )
    return checks


def _allocation(experiment: ExperimentInfo, group: str, day: str) -> float:
    """The group's allocation at the end of ``day`` (its last ramp by then; 0 before any)."""
    end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), datetime.min.time(), UTC)
    end_ms = int(end.timestamp() * 1000)
    info = next(g for g in experiment.groups if g.name == group)
    ramps = [r for r in sorted(info.ramps, key=lambda r: r.ramp_ts) if r.ramp_ts < end_ms]
    return ramps[-1].allocation if ramps else 0.0
