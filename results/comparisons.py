"""Group totals → result rows with lifts, intervals and p-values (docs/metrics.md §8).

Every treatment group is compared with ``control`` of the same experiment, period, metric,
slice and segment value, all at once per test (the ``stats`` functions are columnar). The
experiment's ``analysis`` block sets ``alpha`` and the multiple-testing correction, applied
within families spanning its ``correct_over`` dimensions. A comparison without a control row
(no control user in the slice) is made against an empty control and reported as
``empty_group``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from results.schema import ResultRow

COMPARISON_FIELDS = ("lift_abs", "lift_rel", "ci_low", "ci_high", "rel_ci_low", "rel_ci_high",
                     "p_value")  # fmt: skip
DEFAULT_ALPHA = 0.05


def _cell(row: ResultRow) -> tuple[Any, ...]:
    return (row.experiment, row.period_start, row.day_in, row.segment, row.segment_value,
            row.metric)  # fmt: skip


def compare_groups(
    rows: Sequence[ResultRow],
    controls: frozenset[tuple[str, str]],
    analysis: dict[str, dict[str, Any]],
) -> list[ResultRow]:
    """The rows with the comparison columns of treatment rows filled in."""
    import numpy as np

    from stats.codes import Code
    from stats.ratio import delta_ratio
    from stats.sufficient import RatioStats, SampleStats
    from stats.ttest import welch

    control_of = {_cell(r): r for r in rows if (r.experiment, r.group) in controls}
    treated = [i for i, r in enumerate(rows) if (r.experiment, r.group) not in controls]
    updates: dict[int, dict[str, Any]] = {}
    for is_ratio in (False, True):
        idx = [i for i in treated if (rows[i].den_sum is not None) == is_ratio]
        if not idx:
            continue
        pairs = [(control_of.get(_cell(rows[i])), rows[i]) for i in idx]
        alpha = np.array(
            [float(analysis.get(t.experiment, {}).get("alpha", DEFAULT_ALPHA)) for _, t in pairs]
        )
        if is_ratio:
            result = delta_ratio(
                RatioStats.stack([_ratio_stats(c) for c, _ in pairs]),
                RatioStats.stack([_ratio_stats(t) for _, t in pairs]),
                alpha=alpha,
            )
        else:
            result = welch(
                SampleStats.stack([_sample_stats(c) for c, _ in pairs]),
                SampleStats.stack([_sample_stats(t) for _, t in pairs]),
                alpha=alpha,
            )
        columns = {f: _plain(getattr(result, f)) for f in COMPARISON_FIELDS}
        labels = {int(c): ("" if c is Code.OK else c.label) for c in Code}
        codes = np.asarray(result.code).reshape(-1).tolist()
        for j, i in enumerate(idx):
            updates[i] = {f: values[j] for f, values in columns.items()}
            updates[i]["status"] = labels[codes[j]]
    _adjust(rows, updates, analysis)
    out = list(rows)
    for i, changes in updates.items():
        out[i] = replace(rows[i], **changes)
    return out


def _plain(values: Any) -> list[float | None]:
    """A result column as Python floats, NaN (an undefined statistic) as None."""
    import numpy as np

    arr = np.asarray(values, dtype=float).reshape(-1)
    return [None if v != v else v for v in arr.tolist()]


def _sample_stats(row: ResultRow | None) -> Any:
    from stats.sufficient import SampleStats

    if row is None:
        return SampleStats(0.0, 0.0, 0.0)
    return SampleStats(float(row.n), float(row.sum), float(row.sum_sq))


def _ratio_stats(row: ResultRow | None) -> Any:
    from stats.sufficient import RatioStats

    if row is None:
        return RatioStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return RatioStats(
        float(row.n), float(row.sum), float(row.sum_sq), float(row.den_sum or 0.0),
        float(row.den_sum_sq or 0.0), float(row.sum_xy or 0.0),
    )  # fmt: skip


def _adjust(
    rows: Sequence[ResultRow],
    updates: dict[int, dict[str, Any]],
    analysis: dict[str, dict[str, Any]],
) -> None:
    """Add ``p_value_adjusted`` to ``updates``: each experiment's correction in its families."""
    import numpy as np

    from stats.corrections import adjust, family_ids

    by_experiment: dict[str, list[int]] = {}
    for i in updates:
        by_experiment.setdefault(rows[i].experiment, []).append(i)
    for experiment, idx in by_experiment.items():
        spec = analysis.get(experiment, {})
        keys: dict[str, list[Any]] = {
            "period": [rows[i].period_start for i in idx],
            "day_in": [rows[i].day_in for i in idx],
            "metric": [rows[i].metric for i in idx],
            "group": [rows[i].group for i in idx],
            "segment": [f"{rows[i].segment}={rows[i].segment_value}" for i in idx],
        }
        families = family_ids(keys, list(spec.get("correct_over", ["metric", "group"])))
        p = np.array([np.nan if updates[i]["p_value"] is None else updates[i]["p_value"]
                      for i in idx])  # fmt: skip
        adjusted = adjust(p, spec.get("correction", "none"), families)
        for j, i in enumerate(idx):
            value = float(adjusted[j])
            updates[i]["p_value_adjusted"] = None if np.isnan(value) else value
