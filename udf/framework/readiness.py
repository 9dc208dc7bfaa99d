"""Which metric-days can be computed now, and for the others, what they wait for.

The UDF design's first rule: do not wait for every upstream, compute each metric as soon as
*its* inputs are complete. A metric-day (metric, ds) is ready when

- its slice has ended (every metric type reads up to the end of ds: ``aggregated`` and
  ``custom`` cumulate through it, ``calendar_day`` is that day, and ``days_in`` reports the
  day-k values that are complete at the end of ds);
- every topic it reads (``MetricInfo.sources``) is *closed* through that instant, as the
  producer declared with ``udf data seal`` (:mod:`udf.archive.seal`); a file existing
  proves nothing, since late records keep arriving into open hours;
- the experiment metadata is there: some experiment it is computed for has ramped before
  the slice's end (for an on-demand run, the scoped experiment itself).

The answer is pure data (no state is changed), so the planner decides what to record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from metadata.records import ExperimentInfo, MetricInfo
from udf.archive.seal import closed_through_all, datetime_to_ms, ms_to_datetime
from udf.home import Home

MetricDay = tuple[str, date]


@dataclass(frozen=True)
class Readiness:
    """Ready metric-days (in the order asked) and the waiting ones with their reason."""

    ready: list[MetricDay] = field(default_factory=list)
    waiting: dict[MetricDay, str] = field(default_factory=dict)

    def is_ready(self, metric: str, ds: date) -> bool:
        return (metric, ds) not in self.waiting


def slice_end(metric_type: str, ds: date) -> datetime:
    """The instant through which a metric type reads its inputs for ``ds``: the end of ds (UTC).

    Kept per type so a type reading further (say, a day-k metric waiting for day k of the
    last users exposed on ds) changes one function, not the planner.
    """
    del metric_type  # every shipped type reads through the end of ds
    return datetime.combine(ds + timedelta(days=1), time(0), tzinfo=UTC)


def check_readiness(
    home: Home,
    metrics: Sequence[MetricInfo],
    days: Sequence[date],
    *,
    experiments: Sequence[ExperimentInfo],
    scope: str = "",
    now: datetime | None = None,
    closed: Mapping[str, int | None] | None = None,
) -> Readiness:
    """Judge every metric on every day; ``closed`` overrides the seal markers (tests, callers that read them)."""
    pairs = [(metric, ds) for ds in days for metric in metrics]
    return check_pairs(home, pairs, experiments=experiments, scope=scope, now=now, closed=closed)


def check_pairs(
    home: Home,
    pairs: Sequence[tuple[MetricInfo, date]],
    *,
    experiments: Sequence[ExperimentInfo],
    scope: str = "",
    now: datetime | None = None,
    closed: Mapping[str, int | None] | None = None,
) -> Readiness:
    """Judge the given (metric, ds) pairs, reading each topic's seal marker once."""
    markers = dict(closed) if closed is not None else closed_through_all(home.archive)
    now = now or datetime.now(UTC)
    result = Readiness()
    for metric, ds in pairs:
        reason = _why_not_ready(metric, ds, markers, experiments, scope, now)
        if reason is None:
            result.ready.append((metric.name, ds))
        else:
            result.waiting[(metric.name, ds)] = reason
    return result


def _why_not_ready(
    metric: MetricInfo,
    ds: date,
    markers: Mapping[str, int | None],
    experiments: Sequence[ExperimentInfo],
    scope: str,
    now: datetime,
) -> str | None:
    end = slice_end(metric.metric_type, ds)
    if now < end:
        return f"{ds} has not ended yet (ends {_fmt(end)})"
    end_ms = datetime_to_ms(end)
    missing = []
    for source in metric.sources:
        closed = markers.get(source)
        if closed is None:
            missing.append(f"{source} never sealed (udf data seal)")
        elif closed < end_ms:
            missing.append(f"{source} closed only through {_fmt(ms_to_datetime(closed))}")
    if missing:
        return f"waiting for sources through {_fmt(end)}: " + "; ".join(missing)
    return _why_no_ramps(metric, end_ms, experiments, scope)


def _why_no_ramps(
    metric: MetricInfo, end_ms: int, experiments: Sequence[ExperimentInfo], scope: str
) -> str | None:
    """The experiment metadata is an input too: no ramp before the end means nothing to compute yet."""
    if scope:
        found = [e for e in experiments if e.name == scope]
        if not found:
            return f"experiment {scope!r} is not in the metadata store (udf ramps import)"
        candidates = found
    else:
        # Configured metrics are computed for the experiments selecting them; a metric no
        # experiment selects (the default per-event-type metrics) for every experiment.
        selecting = [e for e in experiments if metric.name in e.metrics]
        candidates = selecting or list(experiments)
        if not candidates:
            return "no experiments in the metadata store yet (udf ramps import)"
    if any(r.ramp_ts < end_ms for e in candidates for g in e.groups for r in g.ramps):
        return None
    names = ", ".join(sorted(e.name for e in candidates)[:5])
    more = "" if len(candidates) <= 5 else f" and {len(candidates) - 5} more"
    return f"no ramp before {_fmt(ms_to_datetime(end_ms))} for {names}{more}"


def _fmt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
