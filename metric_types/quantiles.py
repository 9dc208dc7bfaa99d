"""Quantile metrics in Spark: each group's quantile and its interval, exactly.

Per group and segment value, the per-user values are ranked (a window sorted by value) and
the three type-7 quantiles :mod:`stats.quantile` defines are read off the order statistics:
the estimate at ``level`` and the interval's bounds at ``level -+ z sqrt(level (1 - level) /
n)``, ``z`` from the experiment's ``alpha``. No sketch: the values are sorted, so the
numbers equal numpy's on the same values (docs/metrics.md §13).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from metric_types.semantics import GROUP_KEYS, Columns, with_segments

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from metric_types.plan import MetricPlan

CELL = (*GROUP_KEYS, "segment", "segment_value")


def quantile_cells(
    users: DataFrame, columns: Columns, metrics: Sequence[MetricPlan], z: Mapping[str, float]
) -> dict[tuple[Any, ...], dict[str, float]]:
    """``(metric, *CELL) -> {n, quantile, quantile_low, quantile_high}`` of each quantile
    metric of ``metrics`` (per-user values), ``z`` the normal quantile per experiment."""
    out: dict[tuple[Any, ...], dict[str, float]] = {}
    wanted = [m for m in metrics if m.quantile is not None]
    if not wanted:
        return out
    exploded = with_segments(users, columns)
    for m in wanted:
        assert m.quantile is not None
        value = columns.plain_column(m)
        frame = exploded.where(exploded["experiment"].isin(list(m.experiments)))
        for row in _cells(frame, value, m.quantile, z).collect():
            d = row.asDict()
            out[(m.name, *(d[k] for k in CELL))] = {
                "n": d["n"], "quantile": d["q"], "quantile_low": d["q_low"],
                "quantile_high": d["q_high"],
            }  # fmt: skip
    return out


def _cells(frame: DataFrame, value: str, level: float, z: Mapping[str, float]) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cell = Window.partitionBy(*CELL)
    ranked = frame.select(*CELL, F.col(value).cast("double").alias("v")).withColumns(
        {"r": F.row_number().over(cell.orderBy("v")), "n": F.count(F.lit(1)).over(cell)}
    )
    z_of = F.create_map(*(F.lit(x) for e, zz in sorted(z.items()) for x in (e, zz)))
    half = z_of[F.col("experiment")] * F.sqrt(F.lit(level * (1.0 - level)) / F.col("n"))
    levels = {
        "q": F.lit(level),
        "q_low": F.greatest(F.lit(level) - half, F.lit(0.0)),
        "q_high": F.least(F.lit(level) + half, F.lit(1.0)),
    }
    aggs: list[Column] = [F.max("n").alias("n")]
    for name, at in levels.items():
        h = (F.col("n") - 1) * at  # 0-based virtual index of numpy's linear method
        k = F.floor(h) + 1  # 1-based rank at or below it
        aggs += [
            F.max(F.when(F.col("r") == k, F.col("v"))).alias(f"{name}_a"),
            F.max(F.when(F.col("r") == F.least(k + 1, F.col("n")), F.col("v"))).alias(f"{name}_b"),
            F.max(h - F.floor(h)).alias(f"{name}_t"),
        ]
    cells = ranked.groupBy(*CELL).agg(*aggs)
    return cells.select(
        *CELL, "n",
        *(_lerp(F.col(f"{n}_a"), F.col(f"{n}_b"), F.col(f"{n}_t")).alias(n) for n in levels),
    )  # fmt: skip


def _lerp(a: Column, b: Column, t: Column) -> Column:
    """numpy's ``_lerp``: ``a + t (b - a)``, from ``b``'s side when ``t >= 0.5``."""
    from pyspark.sql import functions as F

    diff = b - a
    return F.when(t >= 0.5, b - diff * (1 - t)).otherwise(a + diff * t)
