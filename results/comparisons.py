"""Group totals → result rows with lifts, intervals and p-values (docs/metrics.md §8).

Every treatment group is compared with ``control`` of the same experiment, period, metric,
slice and segment value, all at once per test (the ``stats`` functions are columnar). The
experiment's ``analysis`` block sets ``alpha`` and the multiple-testing correction, applied
within families spanning its ``correct_over`` dimensions, and may add the sequential
method's columns at the row's look, the Bayesian summaries and CUPED
(:mod:`results.analysis`). A comparison without a control row (no control user in the
slice) is made against an empty control and reported as ``empty_group``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from results.analysis import analysis_columns, plain
from results.schema import ResultRow

if TYPE_CHECKING:
    from udf.config.catalog import AnalysisSpec

COMPARISON_FIELDS = ("lift_abs", "lift_rel", "ci_low", "ci_high", "rel_ci_low", "rel_ci_high",
                     "p_value")  # fmt: skip


def _cell(row: ResultRow) -> tuple[Any, ...]:
    return (row.experiment, row.period_start, row.day_in, row.segment, row.segment_value,
            row.metric)  # fmt: skip


def analysis_specs(
    experiments: Iterable[str], analysis: Mapping[str, Mapping[str, Any]]
) -> dict[str, AnalysisSpec]:
    """Each experiment's settings as the catalog model (its defaults where none are stored)."""
    from udf.config.catalog import AnalysisSpec

    return {
        e: AnalysisSpec.model_validate(dict(analysis.get(e) or {}))
        for e in sorted(set(experiments))
    }


def compare_groups(
    rows: Sequence[ResultRow],
    controls: frozenset[tuple[str, str]],
    analysis: Mapping[str, Mapping[str, Any]],
) -> list[ResultRow]:
    """The rows with the comparison columns of treatment rows filled in."""
    import numpy as np

    from stats.codes import Code
    from stats.sequential.base import fixed_horizon
    from stats.sufficient import RatioStats, SampleStats

    specs = analysis_specs((r.experiment for r in rows), analysis)
    control_of = {_cell(r): r for r in rows if (r.experiment, r.group) in controls}
    treated = [i for i, r in enumerate(rows) if (r.experiment, r.group) not in controls]
    updates: dict[int, dict[str, Any]] = {}
    labels = {int(c): ("" if c is Code.OK else c.label) for c in Code}
    for kind_name in ("mean", "ratio", "quantile"):
        idx = [i for i in treated if _kind(rows[i]) == kind_name]
        if not idx:
            continue
        pairs = [(control_of.get(_cell(rows[i])), rows[i]) for i in idx]
        alpha = np.array([specs[t.experiment].alpha for _, t in pairs])
        if kind_name == "quantile":
            from stats.quantile import QuantileStats, quantile_test

            result = quantile_test(
                QuantileStats(*np.array([_quantile_stats(c) for c, _ in pairs]).T),
                QuantileStats(*np.array([_quantile_stats(t) for _, t in pairs]).T),
                alpha,
            )
            extras: list[dict[str, Any]] = [{} for _ in pairs]
        else:
            kind, to_stats = (
                (RatioStats, _ratio_stats) if kind_name == "ratio" else (SampleStats, _sample_stats)
            )
            control = kind.stack([to_stats(c) for c, _ in pairs])
            treatment = kind.stack([to_stats(t) for _, t in pairs])
            result = fixed_horizon(control, treatment, alpha)
            extras = analysis_columns(specs, pairs, control, treatment, result)
        columns = {f: plain(getattr(result, f)) for f in COMPARISON_FIELDS}
        codes = np.asarray(result.code).reshape(-1).tolist()
        power = np.array([specs[t.experiment].power for _, t in pairs])
        base = np.array([_baseline(c) for c, _ in pairs])
        mde, mde_rel = mde_columns(result, alpha, power, base)
        for j, i in enumerate(idx):
            updates[i] = {f: values[j] for f, values in columns.items()}
            updates[i]["status"] = labels[codes[j]]
            updates[i].update(extras[j])
            updates[i].update(mde=mde[j], mde_rel=mde_rel[j])
    _adjust(rows, updates, specs)
    out = list(rows)
    for i, changes in updates.items():
        out[i] = rows[i].updated(changes)
    return out


def _kind(row: ResultRow) -> str:
    if row.quantile is not None or row.quantile_low is not None:
        return "quantile"
    return "ratio" if row.den_sum is not None else "mean"


def _quantile_stats(row: ResultRow | None) -> tuple[float, float, float, float]:
    nan = float("nan")
    if row is None or row.quantile is None:
        return (0.0 if row is None else float(row.n), nan, nan, nan)
    low, high = row.quantile_low, row.quantile_high
    return (float(row.n), row.quantile, nan if low is None else low, nan if high is None else high)


def _baseline(row: ResultRow | None) -> float:
    """Control's estimate the relative MDE divides by: its quantile, ratio or mean."""
    if row is None:
        return float("nan")
    if row.quantile is not None:
        return row.quantile
    denominator = row.den_sum if row.den_sum is not None else float(row.n)
    return row.sum / denominator if denominator else float("nan")


def mde_columns(
    result: Any, alpha: Any, power: Any, base: Any
) -> tuple[list[float | None], list[float | None]]:
    """The smallest absolute and relative differences the comparison detects with ``power``.

    For the two-sided z-test of a difference with standard error ``se`` the MDE is ``k se``,
    ``k`` solving ``Phi(k - z) + Phi(-k - z) = power`` (``z = Phi^-1(1 - alpha/2)``), which
    is :func:`stats.power.mde` for a standard error of 1 (statsmodels' ``NormalIndPower``).
    """
    import numpy as np

    from stats.power import mde

    factors: dict[tuple[float, float], float] = {}
    k = []
    for a, p in zip(np.asarray(alpha).tolist(), np.asarray(power).tolist(), strict=True):
        if (a, p) not in factors:  # se = sigma * sqrt(1/2 + 1/2) = 1
            factors[(a, p)] = mde(1.0, 2.0, 1.0, a, p, "z")
        k.append(factors[(a, p)])
    se = np.asarray(result.se, dtype=float)
    absolute = np.asarray(k) * se
    base = np.asarray(base, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(np.isfinite(base) & (base != 0), absolute / np.abs(base), np.nan)
    return plain(absolute), plain(relative)


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
    specs: dict[str, AnalysisSpec],
) -> None:
    """Add ``p_value_adjusted`` to ``updates``: each experiment's correction in its families."""
    import numpy as np

    from stats.corrections import adjust, family_ids

    by_experiment: dict[str, list[int]] = {}
    for i in updates:
        by_experiment.setdefault(rows[i].experiment, []).append(i)
    for experiment, idx in by_experiment.items():
        spec = specs[experiment]
        keys: dict[str, list[Any]] = {
            "period": [rows[i].period_start for i in idx],
            "day_in": [rows[i].day_in for i in idx],
            "metric": [rows[i].metric for i in idx],
            "group": [rows[i].group for i in idx],
            "segment": [f"{rows[i].segment}={rows[i].segment_value}" for i in idx],
        }
        families = family_ids(keys, list(spec.correct_over))
        p = np.array([np.nan if updates[i]["p_value"] is None else updates[i]["p_value"]
                      for i in idx])  # fmt: skip
        adjusted = adjust(p, spec.correction, families)
        for j, i in enumerate(idx):
            value = float(adjusted[j])
            updates[i]["p_value_adjusted"] = None if np.isnan(value) else value
