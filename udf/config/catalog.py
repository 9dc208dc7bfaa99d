"""The metric catalog: metric definitions, segments and per-experiment metric selection.

A catalog file may hold any of the three lists::

    metrics:
      - name: clicks
        type: aggregated          # selects the model: aggregated | calendar_day | days_in | custom
        event_type: click
        owners: [ana@example.com]
        sla_hours: 30
        alert: {direction: decrease}   # real-time alerts (udf.config.alerts)
    segments:
      - name: country
        field: country
    experiments:
      - experiment: exp_001
        metrics: [clicks]
        segments: [country]

The ``type`` key picks the model (a discriminated union, :data:`MetricSpec`), so each
metric type validates exactly the parameters it understands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from udf.config.alerts import AlertRule, ExperimentAlerts
from udf.config.models import Email, Identifier, StrictModel
from udf.errors import CustomMetricError

Source = Literal["events", "activations"]
SOURCES: tuple[Source, ...] = ("events", "activations")


class _MetricBase(StrictModel):
    name: Identifier
    description: str = ""
    owners: list[Email] = Field(default_factory=list)
    sla_hours: PositiveFloat = 30.0
    sources: list[Source] = Field(default_factory=lambda: list(SOURCES))
    segments: list[Identifier] = Field(default_factory=list)
    alert: AlertRule | None = None

    def params(self) -> dict[str, Any]:
        """The type-specific parameters, as stored in the metadata store."""
        common = set(_MetricBase.model_fields) | {"type"}
        return self.model_dump(exclude=common, exclude_none=True)


class EventValue(StrictModel):
    event_type: Identifier
    statistic: Literal["count", "sum"] = "count"


class Ratio(StrictModel):
    numerator: EventValue
    denominator: EventValue


MAX_WINDOW_HOURS = 24 * 3650


class Winsorize(StrictModel):
    """Cap each user's value at this percentile of the pooled per-user values of all groups
    of the experiment period (docs/metrics.md §12)."""

    percentile: float = Field(gt=0, lt=100)


class Quantile(StrictModel):
    """Compare a quantile of the per-user values instead of their mean (docs/metrics.md §13).

    ``unit`` is ``user`` only for now: the quantile of the events' own values (users being
    clusters of events) needs the clustered variance, which is not built yet.
    """

    level: float = Field(gt=0, lt=1)
    unit: Literal["user"] = "user"


class _EventMetric(_MetricBase):
    """A metric over counted events: one event type (count or sum of ``value``) or a ratio.

    ``window_hours`` counts only events within that many hours after the user's exposure
    (a conversion window, docs/metrics.md §11); ``winsorize`` caps the per-user values and
    ``quantile`` compares a quantile of them (count and sum metrics only).
    """

    event_type: Identifier | None = None
    statistic: Literal["count", "sum"] = "count"
    ratio: Ratio | None = None
    window_hours: PositiveFloat | None = Field(default=None, le=MAX_WINDOW_HOURS)
    winsorize: Winsorize | None = None
    quantile: Quantile | None = None

    @model_validator(mode="after")
    def _one_value(self) -> _EventMetric:
        if (self.event_type is None) == (self.ratio is None):
            raise ValueError("give exactly one of 'event_type' or 'ratio'")
        if self.ratio is not None and (self.winsorize or self.quantile):
            raise ValueError(
                "'winsorize' and 'quantile' apply to count and sum metrics, not ratios"
            )
        if self.winsorize is not None and self.quantile is not None:
            raise ValueError("give at most one of 'winsorize' or 'quantile'")
        return self


class AggregatedMetric(_EventMetric):
    type: Literal["aggregated"]


class CalendarDayMetric(_EventMetric):
    type: Literal["calendar_day"]


class DaysInMetric(_EventMetric):
    type: Literal["days_in"]
    days: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 3], min_length=1)


class CustomMetric(_MetricBase):
    """A user's read-only SQL over the standard views, or a Spark function named by import path."""

    type: Literal["custom"]
    sql: str | None = None
    function: str | None = None
    # The most one day's values may take in Spark; default: settings' custom_timeout_seconds.
    timeout_seconds: PositiveFloat | None = None
    window_hours: PositiveFloat | None = Field(default=None, le=MAX_WINDOW_HOURS)
    winsorize: Winsorize | None = None

    @model_validator(mode="after")
    def _one_body(self) -> CustomMetric:
        if (self.sql is None) == (self.function is None):
            raise ValueError("give exactly one of 'sql' or 'function'")
        return self

    @field_validator("sql")
    @classmethod
    def _read_only_sql(cls, sql: str | None) -> str | None:
        """Refuse SQL that writes, reads outside the standard views or runs code, saying why."""
        if sql is not None:
            # Imported here: only a catalog with custom SQL pays for importing sqlglot.
            from metric_types.custom.sql_guard import check_sql

            _as_value_error(check_sql, sql)
        return sql

    @field_validator("function")
    @classmethod
    def _import_path(cls, function: str | None) -> str | None:
        """Check the ``package.module:function`` form only: user code is imported at compute time."""
        if function is not None:
            from metric_types.custom.functions import split_path

            _as_value_error(split_path, function)
        return function


def _as_value_error(check: Callable[[str], object], value: str) -> None:
    """Run ``check``; its refusal becomes a ValueError, which pydantic reports with the field."""
    try:
        check(value)
    except CustomMetricError as exc:
        raise ValueError(str(exc)) from None


MetricSpec = Annotated[
    AggregatedMetric | CalendarDayMetric | DaysInMetric | CustomMetric,
    Field(discriminator="type"),
]


class SegmentSpec(StrictModel):
    name: Identifier
    field: Identifier
    description: str = ""


Correction = Literal["none", "bonferroni", "holm", "bh"]
Sequential = Literal[
    "none",
    "bonferroni_looks",
    "obrien_fleming",
    "pocock",
    "msprt",
    "confidence_sequence",
    "gamblers_ruin",
]
LOOKS_NEEDED = ("bonferroni_looks", "obrien_fleming", "pocock")
Dimension = Literal["metric", "group", "segment"]
DEFAULT_FAMILY: tuple[Dimension, ...] = ("metric", "group")
DEFAULT_ALPHA = 0.05
DEFAULT_POWER = 0.8
DEFAULT_SRM_ALPHA = 0.001


MAX_PRE_DAYS = 60


class CupedSpec(StrictModel):
    """CUPED: each exposed user's value of the metric over the ``pre_days`` days before their
    exposure is the covariate (docs/metrics.md §8)."""

    pre_days: PositiveInt = Field(le=MAX_PRE_DAYS)


class AnalysisSpec(StrictModel):
    """How an experiment's comparisons are judged (the ``stats`` package does the work).

    ``correction`` adjusts p-values within families spanning the ``correct_over``
    dimensions (e.g. every metric and group of one segment); ``sequential`` names the method
    for results that are looked at continuously, with ``looks`` planned looks where the
    method needs a fixed number (``total_conversions`` for the gambler's ruin);
    ``bayesian`` adds the chance to beat control and the expected loss; ``cuped`` adds
    comparisons adjusted by a pre-exposure covariate. ``power`` is the power the results' MDE
    is computed for; ``srm_alpha`` the level of the sample-ratio-mismatch check;
    ``multiple_groups`` whether users exposed to more than one group of the experiment are
    kept in every group they saw (``keep``) or left out of all (``exclude``).
    """

    alpha: float = Field(default=DEFAULT_ALPHA, gt=0, lt=0.5)
    power: float = Field(default=DEFAULT_POWER, gt=0.5, lt=1)
    srm_alpha: float = Field(default=DEFAULT_SRM_ALPHA, gt=0, lt=0.5)
    multiple_groups: Literal["keep", "exclude"] = "keep"
    correction: Correction = "none"
    correct_over: list[Dimension] = Field(default_factory=lambda: list(DEFAULT_FAMILY))
    sequential: Sequential = "none"
    looks: PositiveInt | None = None
    total_conversions: PositiveInt | None = None
    bayesian: bool = False
    cuped: CupedSpec | None = None

    @model_validator(mode="after")
    def _looks_when_needed(self) -> AnalysisSpec:
        if self.sequential in LOOKS_NEEDED and self.looks is None:
            raise ValueError(
                f"sequential method {self.sequential!r} needs 'looks' (the planned number)"
            )
        if self.sequential not in LOOKS_NEEDED and self.looks is not None:
            raise ValueError(f"'looks' applies only to {', '.join(LOOKS_NEEDED)}")
        needs_total = self.sequential == "gamblers_ruin"
        if needs_total and self.total_conversions is None:
            raise ValueError(
                "sequential method 'gamblers_ruin' needs 'total_conversions' (the planned number "
                "of conversions of both groups together)"
            )
        if not needs_total and self.total_conversions is not None:
            raise ValueError("'total_conversions' applies only to gamblers_ruin")
        return self


class ExperimentSelection(StrictModel):
    experiment: Identifier
    metrics: list[Identifier] = Field(min_length=1)
    segments: list[Identifier] = Field(default_factory=list)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    alerts: ExperimentAlerts = Field(default_factory=ExperimentAlerts)

    @model_validator(mode="after")
    def _alerts_on_selected_metrics(self) -> ExperimentSelection:
        extra = sorted(set(self.alerts.metrics) - set(self.metrics))
        if extra:
            raise ValueError(
                f"alerts.metrics names {', '.join(extra)}, not among the experiment's metrics"
            )
        return self


class CatalogFile(StrictModel):
    metrics: list[MetricSpec] = Field(default_factory=list)
    segments: list[SegmentSpec] = Field(default_factory=list)
    experiments: list[ExperimentSelection] = Field(default_factory=list)
