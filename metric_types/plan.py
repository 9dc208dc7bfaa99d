"""Spec → plan: which metrics a batch computes, for which experiments, periods and segments.

The metadata store holds the catalog (configured metrics, segments, per-experiment
selection) and the ramps; :func:`resolve` turns them into a :class:`BatchPlan` that the Spark
code consumes without touching the store again. Default metrics (one per event type,
the contract §3) are computed for every experiment; configured ones for the experiments that
select them. A metric is broken down by its own segments plus its experiment's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from metadata.periods import DAY_MS
from metadata.records import ExperimentInfo, MetricInfo, SegmentInfo
from metric_types.base import PeriodRow
from udf.errors import InputError

if TYPE_CHECKING:
    from udf.config.catalog import AnalysisSpec

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Value:
    """A per-user value: the count of an event type, or the sum of its ``value`` field, over
    the user's counted events (only those before ``t_u + window_ms`` when ``window_ms``)."""

    event_type: str
    statistic: str = "count"
    window_ms: int = 0  # 0: no conversion window

    @property
    def events(self) -> tuple[str, int]:
        """The events the value reads: (event type, window)."""
        return (self.event_type, self.window_ms)


@dataclass(frozen=True)
class MetricPlan:
    name: str
    metric_type: str
    numerator: Value | None = None
    denominator: Value | None = None
    days: tuple[int, ...] = ()
    sql: str | None = None
    function: str | None = None
    timeout_seconds: float | None = None  # custom metrics: the run-time limit, if its own
    window_ms: int = 0  # conversion window (0: none): events before t_u + window_ms only
    winsorize: float | None = None  # cap per-user values at this pooled percentile (0-100)
    quantile: float | None = None  # compare this quantile (0-1) instead of the mean
    experiments: tuple[str, ...] = ()
    segments: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (experiment, segment names)

    @cached_property
    def experiment_set(self) -> frozenset[str]:
        """:attr:`experiments` as a set (looked up once per group total and metric)."""
        return frozenset(self.experiments)

    @property
    def is_ratio(self) -> bool:
        return self.denominator is not None

    @property
    def is_custom(self) -> bool:
        return self.sql is not None or self.function is not None

    @property
    def has_covariate(self) -> bool:
        """Whether CUPED applies: a count or sum of one event type (not a ratio, not custom,
        not winsorized, not a quantile)."""
        plain = self.winsorize is None and self.quantile is None
        return self.numerator is not None and self.denominator is None and plain

    def segments_of(self, experiment: str) -> tuple[str, ...]:
        return dict(self.segments).get(experiment, ())


@dataclass(frozen=True)
class BatchPlan:
    metric_type: str
    metrics: tuple[MetricPlan, ...]
    periods: tuple[PeriodRow, ...]
    controls: frozenset[tuple[str, str]]  # (experiment, group) of each control group
    segment_fields: dict[str, str] = field(default_factory=dict)
    analysis: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (experiment, group, ramp_ts, allocation) of every ramp: the SRM check's expectation
    ramps: tuple[tuple[str, str, int, float], ...] = ()

    @property
    def experiments(self) -> tuple[str, ...]:
        return tuple(sorted({e for m in self.metrics for e in m.experiments}))

    @cached_property
    def specs(self) -> dict[str, AnalysisSpec]:
        """Each experiment's analysis settings as the catalog model, validated once."""
        from results.comparisons import analysis_specs

        return analysis_specs(self.experiments, self.analysis)

    def cuped_windows(self) -> dict[str, int]:
        """The pre-exposure window (ms) of each experiment whose analysis asks for CUPED."""
        return cuped_windows(self.specs)


def cuped_windows(specs: Mapping[str, AnalysisSpec]) -> dict[str, int]:
    """The CUPED covariate's window (ms) of each experiment of ``specs`` that asks for it."""
    return {e: s.cuped.pre_days * DAY_MS for e, s in specs.items() if s.cuped is not None}


def excluding(specs: Mapping[str, AnalysisSpec]) -> tuple[str, ...]:
    """The experiments of ``specs`` that leave out users exposed to two or more of their
    groups (``analysis.multiple_groups: exclude``), in name order."""
    return tuple(sorted(e for e, s in specs.items() if s.multiple_groups == "exclude"))


def metric_plan(
    info: MetricInfo, experiments: Sequence[str], segments: dict[str, tuple[str, ...]]
) -> MetricPlan:
    params = info.params
    numerator = denominator = None
    window = round(params["window_hours"] * HOUR_MS) if params.get("window_hours") else 0
    if "ratio" in params:
        numerator = Value(**params["ratio"]["numerator"], window_ms=window)
        denominator = Value(**params["ratio"]["denominator"], window_ms=window)
    elif "event_type" in params:
        numerator = Value(params["event_type"], params.get("statistic", "count"), window)
    quantile = params.get("quantile") or {}
    return MetricPlan(
        name=info.name,
        metric_type=info.metric_type,
        numerator=numerator,
        denominator=denominator,
        days=tuple(params.get("days", ())),
        sql=params.get("sql"),
        function=params.get("function"),
        timeout_seconds=params.get("timeout_seconds"),
        window_ms=window,
        winsorize=(params.get("winsorize") or {}).get("percentile"),
        quantile=quantile.get("level"),
        experiments=tuple(sorted(experiments)),
        segments=tuple(sorted((e, segments[e]) for e in experiments if segments.get(e))),
    )


def resolve(
    metric_type: str,
    catalog: Sequence[MetricInfo],
    experiments: Sequence[ExperimentInfo],
    segments: Sequence[SegmentInfo],
    window_ms: int,
    *,
    only_metrics: Sequence[str] | None = None,
    only_experiments: Sequence[str] | None = None,
) -> BatchPlan:
    """The plan of one batch of ``metric_type`` (every enabled metric of it, or those named)."""
    of_type = {m.name: m for m in catalog if m.metric_type == metric_type and m.enabled}
    if only_metrics is not None:
        unknown = sorted(set(only_metrics) - set(of_type))
        if unknown:
            raise InputError(
                f"no enabled {metric_type} metric named {', '.join(map(repr, unknown))}"
            )
        of_type = {name: of_type[name] for name in only_metrics}
    chosen = [e for e in experiments if only_experiments is None or e.name in only_experiments]
    if only_experiments is not None:
        missing = sorted(set(only_experiments) - {e.name for e in chosen})
        if missing:
            raise InputError(f"unknown experiment {', '.join(map(repr, missing))}")
    segment_fields = {s.name: s.field for s in segments}
    plans = []
    selected = {e.name: frozenset(e.metrics) for e in chosen}
    for info in of_type.values():
        names = [e.name for e in chosen if info.is_default or info.name in selected[e.name]]
        seg = {
            e.name: tuple(sorted(set(info.segments) | set(e.segments))) for e in chosen
            if e.name in names
        }  # fmt: skip
        if names:
            plans.append(metric_plan(info, names, seg))
    wanted = {e for p in plans for e in p.experiments}
    periods: list[PeriodRow] = []
    controls: set[tuple[str, str]] = set()
    ramps: list[tuple[str, str, int, float]] = []
    for exp in chosen:
        if exp.name not in wanted:
            continue
        for group in exp.groups:
            ramps.extend((exp.name, group.name, r.ramp_ts, r.allocation) for r in group.ramps)
            if group.is_control:
                controls.add((exp.name, group.name))
            periods.extend(
                PeriodRow(exp.name, group.name, p.start, p.end) for p in group.periods(window_ms)
            )
    return BatchPlan(
        metric_type=metric_type,
        metrics=tuple(sorted(plans, key=lambda p: p.name)),
        periods=tuple(sorted(periods, key=lambda p: (p.experiment, p.group, p.start))),
        controls=frozenset(controls),
        segment_fields={
            name: segment_fields[name]
            for p in plans
            for _, names in p.segments
            for name in names
            if name in segment_fields
        },
        analysis={e.name: dict(e.analysis or {}) for e in chosen if e.name in wanted},
        ramps=tuple(sorted(ramps)),
    )
