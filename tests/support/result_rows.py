"""Result rows for tests: one valid row with any field overridden, and slices of them."""

from __future__ import annotations

from datetime import date
from typing import Any

from results.schema import ResultRow, Slice

DAY = date(2026, 1, 2)


def make_row(**fields: Any) -> ResultRow:
    """A control row of experiment ``exp``, metric ``click``, ``aggregated`` on 2026-01-02."""
    values: dict[str, Any] = dict(
        experiment="exp", group="control", metric="click", metric_type="aggregated",
        period_start=1_767_225_600_000, period_end=1_767_484_800_000, date=DAY.isoformat(),
        day_in=0, segment="", segment_value="", exposed=10, volume=7, propensity=5, n=10,
        sum=7.0, sum_sq=11.0, source="batch", computed_at=1_767_400_000_000,
    )  # fmt: skip
    values.update(fields)
    return ResultRow(**values)


def treatment(**fields: Any) -> ResultRow:
    """A treatment row with every comparison column set."""
    values: dict[str, Any] = dict(
        group="treatment", sum=9.0, sum_sq=15.5, lift_abs=0.2, lift_rel=0.1 + 0.2,
        ci_low=-0.125, ci_high=0.525, rel_ci_low=-1e-300, rel_ci_high=123456789.123456789,
        p_value=0.04, p_value_adjusted=0.08,
    )  # fmt: skip
    values.update(fields)
    return make_row(**values)


def slice_rows(
    metrics: tuple[str, ...] = ("click",),
    experiments: tuple[str, ...] = ("exp",),
    **fields: Any,
) -> list[ResultRow]:
    """A control and a treatment row per metric and experiment."""
    return [
        row
        for metric in metrics
        for experiment in experiments
        for row in (
            make_row(metric=metric, experiment=experiment, **fields),
            treatment(metric=metric, experiment=experiment, **fields),
        )
    ]


def slice_of(
    metrics: tuple[str, ...] = ("click",),
    *,
    day: date = DAY,
    source: str = "batch",
    metric_type: str = "aggregated",
    experiments: tuple[str, ...] | None = None,
) -> Slice:
    return Slice(source, metric_type, day, metrics, experiments)  # type: ignore[arg-type]
