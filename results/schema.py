"""The versioned results schema (the contract §4): one row per group, metric and slice.

Every store (the embedded SQL store, Druid) holds exactly these columns, and ``udf results
export`` writes them as JSONL. A change to the columns bumps :data:`SCHEMA_VERSION` and comes
with a migration note in ``docs/results.md``.

A *slice* is what one computation replaces as a whole: the rows of one source and metric type
for one date, limited to the metrics (and, for an on-demand run, the experiments) it
computed. Rerunning a slice deletes its rows and writes the new ones in one step, so results
are never double-counted and never half-written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from operator import attrgetter
from typing import Any, Literal

from udf.errors import InputError

SCHEMA_VERSION = 3
Source = Literal["batch", "stream"]
SOURCES: tuple[Source, ...] = ("batch", "stream")


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One group of one experiment period, for one metric and slice.

    ``date`` is the slice's day (``YYYY-MM-DD``): the through-date of ``aggregated`` and
    ``custom``, the day itself for ``calendar_day``, the as-of date for ``days_in`` (whose
    ``day_in`` is ``k``; 0 for the other types). ``segment`` is ``""`` for the whole group or a
    segment's name, with the users' ``segment_value`` (``""`` when they have none).
    ``den_*`` and ``sum_xy`` are set for ratio metrics only, ``pre_*`` (the CUPED covariate's
    sums) for count and sum metrics of experiments that ask for CUPED. The comparison columns
    are set on treatment rows only: the fixed-horizon test (``lift_abs`` .. ``p_value_adjusted``),
    CUPED (``cuped_*``, ``variance_reduction``), the sequential method at ``look``
    (``seq_*``) and the Bayesian summaries, each only where the experiment's ``analysis``
    asks for it. ``look`` is the day of the period (1 on the period's first date) on every
    row. ``status`` names why a comparison is degenerate (``""`` when fine).

    Since version 3: ``cap`` is the winsorization cap a metric's per-user values were
    limited to (``sum`` and ``sum_sq`` are of the capped values); ``quantile`` (with its
    interval ``quantile_low`` .. ``quantile_high``) is the group's estimate of a quantile
    metric, whose lift columns then compare quantiles; ``mde``/``mde_rel`` are the minimum
    detectable effects at the row's sample size (treatment rows); ``srm_p_value``,
    ``multiple_groups`` and ``health`` are the experiment period's health checks
    (:mod:`results.health`).

    Slotted: a row takes half the memory of one with a ``__dict__`` (about 0.9 KB).
    """

    experiment: str
    group: str
    metric: str
    metric_type: str
    period_start: int
    period_end: int
    date: str
    day_in: int
    segment: str
    segment_value: str
    exposed: int
    volume: int
    propensity: int
    n: int
    sum: float
    sum_sq: float
    den_sum: float | None = None
    den_sum_sq: float | None = None
    sum_xy: float | None = None
    pre_sum: float | None = None
    pre_sum_sq: float | None = None
    pre_sum_xy: float | None = None
    cap: float | None = None
    quantile: float | None = None
    quantile_low: float | None = None
    quantile_high: float | None = None
    lift_abs: float | None = None
    lift_rel: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    rel_ci_low: float | None = None
    rel_ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    cuped_lift_abs: float | None = None
    cuped_lift_rel: float | None = None
    cuped_ci_low: float | None = None
    cuped_ci_high: float | None = None
    cuped_rel_ci_low: float | None = None
    cuped_rel_ci_high: float | None = None
    cuped_p_value: float | None = None
    variance_reduction: float | None = None
    look: int = 0
    seq_decision: str = ""
    seq_p_value: float | None = None
    seq_alpha: float | None = None
    seq_ci_low: float | None = None
    seq_ci_high: float | None = None
    seq_rel_ci_low: float | None = None
    seq_rel_ci_high: float | None = None
    prob_beat_control: float | None = None
    expected_loss: float | None = None
    mde: float | None = None
    mde_rel: float | None = None
    srm_p_value: float | None = None
    multiple_groups: int = 0
    health: str = ""
    status: str = ""
    source: Source = "batch"
    computed_at: int = 0
    schema_version: int = field(default=SCHEMA_VERSION)

    def key(self) -> tuple[Any, ...]:
        """The row's identity: at most one row per key in any store."""
        return _key_of(self)

    def values(self) -> tuple[Any, ...]:
        """Every column's value, in :data:`COLUMNS` order."""
        return _values_of(self)

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: every field is a scalar, and its deep copies cost seconds
        # on a slice of a hundred thousand rows.
        return dict(zip(COLUMNS, _values_of(self), strict=True))

    def updated(self, changes: Mapping[str, Any]) -> ResultRow:
        """A copy with ``changes``: :func:`dataclasses.replace`, twice as fast (a daily run
        of 15,000 metrics over 300 groups updates millions of rows)."""
        values = list(_values_of(self))
        for name, value in changes.items():
            if name not in _POSITION:
                raise TypeError(f"ResultRow has no field {name!r}")
            values[_POSITION[name]] = value
        return ResultRow(*values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultRow:
        unknown = set(data) - set(COLUMNS)
        if unknown:
            raise InputError(f"unknown result columns: {', '.join(sorted(unknown))}")
        return cls(**data)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(ResultRow))
KEY: tuple[str, ...] = (
    "source", "metric_type", "date", "experiment", "group", "metric", "period_start",
    "day_in", "segment", "segment_value",
)  # fmt: skip
_key_of = attrgetter(*KEY)
_values_of = attrgetter(*COLUMNS)
_POSITION = {name: i for i, name in enumerate(COLUMNS)}
INTEGER_COLUMNS = frozenset(
    {"period_start", "period_end", "day_in", "exposed", "volume", "propensity", "n", "look",
     "multiple_groups", "computed_at", "schema_version"}
)  # fmt: skip
FLOAT_COLUMNS = frozenset(f.name for f in fields(ResultRow) if f.type in ("float", "float | None"))
STRING_COLUMNS = frozenset(COLUMNS) - INTEGER_COLUMNS - FLOAT_COLUMNS


@dataclass(frozen=True)
class Slice:
    """What one computation replaces: ``metrics`` of one source, type and date (and experiments)."""

    source: Source
    metric_type: str
    date: date
    metrics: tuple[str, ...]
    experiments: tuple[str, ...] | None = None  # None: every experiment

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"unknown results source {self.source!r}")
        if not self.metrics:
            raise InputError("a results slice needs at least one metric")

    @property
    def day(self) -> str:
        return self.date.isoformat()

    def contains(self, row: ResultRow) -> bool:
        return (
            row.source == self.source
            and row.metric_type == self.metric_type
            and row.date == self.day
            and row.metric in self.metrics
            and (self.experiments is None or row.experiment in self.experiments)
        )

    def check(self, rows: Iterable[ResultRow]) -> list[ResultRow]:
        """The rows, after making sure each belongs to this slice and no key repeats."""
        out, seen = [], set()
        metrics = frozenset(self.metrics)
        experiments = None if self.experiments is None else frozenset(self.experiments)
        day = self.day
        for row in rows:
            inside = (
                row.source == self.source and row.metric_type == self.metric_type
                and row.date == day and row.metric in metrics
                and (experiments is None or row.experiment in experiments)
            )  # fmt: skip
            if not inside:
                raise InputError(
                    f"row {row.key()} is outside the slice {self.metric_type} {self.day} "
                    f"({', '.join(self.metrics)})"
                )
            key = row.key()
            if key in seen:
                raise InputError(f"row {key} appears twice in one slice")
            seen.add(key)
            out.append(row)
        return out
