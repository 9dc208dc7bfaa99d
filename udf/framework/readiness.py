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

Some metric-days have nothing to compute at all, whatever arrives: a configured metric no
experiment selects (or that the on-demand run's experiment does not select), or one whose
selecting experiments all start after the slice's end. They are *not selected*, with the
reason, and cost neither a batch nor an email. Default metrics (one per event type) are
computed for every experiment, so they are never unselected.

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
    """Ready metric-days (in the order asked), the waiting and the unselected ones with why."""

    ready: list[MetricDay] = field(default_factory=list)
    waiting: dict[MetricDay, str] = field(default_factory=dict)
    not_selected: dict[MetricDay, str] = field(default_factory=dict)

    def is_ready(self, metric: str, ds: date) -> bool:
        return (metric, ds) not in self.waiting and (metric, ds) not in self.not_selected


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
        state, reason = _why_not_ready(metric, ds, markers, experiments, scope, now)
        if state == "not_selected":
            result.not_selected[(metric.name, ds)] = reason
        elif state == "waiting_on_source":
            result.waiting[(metric.name, ds)] = reason
        else:
            result.ready.append((metric.name, ds))
    return result


def _why_not_ready(
    metric: MetricInfo,
    ds: date,
    markers: Mapping[str, int | None],
    experiments: Sequence[ExperimentInfo],
    scope: str,
    now: datetime,
) -> tuple[str | None, str]:
    """``(state, reason)``: ``not_selected``, ``waiting_on_source``, or ``(None, "")`` if ready."""
    candidates, why = _computed_for(metric, experiments, scope)
    if why:
        return "not_selected", why
    end = slice_end(metric.metric_type, ds)
    if now < end:
        return "waiting_on_source", f"{ds} has not ended yet (ends {_fmt(end)})"
    end_ms = datetime_to_ms(end)
    ramps = [r.ramp_ts for e in candidates for g in e.groups for r in g.ramps]
    if ramps and min(ramps) >= end_ms:
        first = _fmt(ms_to_datetime(min(ramps)))
        return (
            "not_selected",
            f"its experiments start after {ds} ({_names(candidates)}; first ramp {first})",
        )
    missing = []
    for source in metric.sources:
        closed = markers.get(source)
        if closed is None:
            missing.append(f"{source} never sealed (udf data seal)")
        elif closed < end_ms:
            missing.append(f"{source} closed only through {_fmt(ms_to_datetime(closed))}")
    if missing:
        return "waiting_on_source", f"waiting for sources through {_fmt(end)}: " + "; ".join(
            missing
        )
    if not ramps:  # the experiment metadata is an input too
        if scope and not candidates:
            return "waiting_on_source", (
                f"experiment {scope!r} is not in the metadata store (udf ramps import)"
            )
        if not candidates:
            return (
                "waiting_on_source",
                "no experiments in the metadata store yet (udf ramps import)",
            )
        return "waiting_on_source", f"no ramp before {_fmt(end)} for {_names(candidates)}"
    return None, ""


def _computed_for(
    metric: MetricInfo, experiments: Sequence[ExperimentInfo], scope: str
) -> tuple[list[ExperimentInfo], str]:
    """The experiments a metric is computed for, or why it is computed for none.

    Configured metrics are computed for the experiments selecting them; default metrics
    (one per event type) for every experiment. An experiment missing from the store is
    metadata that has not arrived: that waits, it is not "not selected".
    """
    if scope:
        found = [e for e in experiments if e.name == scope]
        if found and not metric.is_default and metric.name not in found[0].metrics:
            return [], f"experiment {scope} does not select it"
        return found, ""
    if metric.is_default:
        return list(experiments), ""
    selecting = [e for e in experiments if metric.name in e.metrics]
    if not selecting:
        return [], "no experiment selects it (the catalog's experiments[].metrics)"
    return selecting, ""


def _names(experiments: Sequence[ExperimentInfo]) -> str:
    names = ", ".join(sorted(e.name for e in experiments)[:5])
    return names + ("" if len(experiments) <= 5 else f" and {len(experiments) - 5} more")


def _fmt(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
