"""An experiment's analysis beyond the fixed-horizon test: the sequential look, Bayes, CUPED.

:func:`results.comparisons.compare_groups` computes the fixed-horizon comparison of every
treatment row; :func:`analysis_columns` adds what the experiment's ``analysis`` block asks
for (docs/metrics.md §8):

- ``sequential``: the method's decision, p-value, level and interval at the row's ``look``
  (:func:`look_of`), each look judged on its own statistics (docs/metrics.md §8 says why);
- ``bayesian``: the chance to beat control and the expected loss of shipping treatment;
- ``cuped``: the comparison adjusted by the pre-exposure covariate, and the variance
  reduction it achieved.

Every number comes from one ``stats`` function called on the rows' sufficient statistics;
this module only picks the function and its settings and turns arrays into columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from results.schema import ResultRow

if TYPE_CHECKING:
    from stats.lift import Comparison
    from stats.sequential.base import Stats
    from stats.sequential.result import SequentialResult
    from udf.config.catalog import AnalysisSpec

DAY_MS = 86_400_000
SEQUENTIAL_FIELDS = ("seq_decision", "seq_p_value", "seq_alpha", "seq_ci_low", "seq_ci_high",
                     "seq_rel_ci_low", "seq_rel_ci_high")  # fmt: skip
BAYES_FIELDS = ("prob_beat_control", "expected_loss")
CUPED_FIELDS = ("cuped_lift_abs", "cuped_lift_rel", "cuped_ci_low", "cuped_ci_high",
                "cuped_rel_ci_low", "cuped_rel_ci_high", "cuped_p_value", "variance_reduction")  # fmt: skip

Columns = dict[str, list[Any]]


def look_of(day: str, period_start: int) -> int:
    """The look of date ``day`` in a period: ``k`` when the day ends more than ``k - 1`` and at
    most ``k`` days after ``period_start`` (1 on the period's first date)."""
    start = date.fromisoformat(day).toordinal() - date(1970, 1, 1).toordinal()
    end = (start + 1) * DAY_MS
    return -(-(end - period_start) // DAY_MS)


def plain(values: Any) -> list[float | None]:
    """A result column as Python floats, NaN (an undefined statistic) as None."""
    arr = np.asarray(values, dtype=float).reshape(-1)
    return [None if v != v else v for v in arr.tolist()]


def analysis_columns(
    specs: dict[str, AnalysisSpec],
    pairs: Sequence[tuple[ResultRow | None, ResultRow]],
    control: Stats,
    treatment: Stats,
    base: Comparison,
) -> list[dict[str, Any]]:
    """The extra columns of each (control, treatment) pair, in order.

    ``control``/``treatment`` are the pairs' statistics stacked (``SampleStats`` or
    ``RatioStats``) and ``base`` their fixed-horizon comparison.
    """
    out: list[dict[str, Any]] = [{} for _ in pairs]

    def fill(positions: Sequence[int], columns: Columns) -> None:
        for name, values in columns.items():
            for j, value in zip(positions, values, strict=True):
                out[j][name] = value

    by_experiment: dict[str, list[int]] = {}
    for j, (_, t) in enumerate(pairs):
        by_experiment.setdefault(t.experiment, []).append(j)
    for experiment, positions in by_experiment.items():
        spec, pos = specs[experiment], np.asarray(positions)
        if spec.sequential != "none":
            looks = np.array([pairs[j][1].look for j in positions])
            conversions = (
                np.array([_conversions(pairs[j][0]) for j in positions]),
                np.array([_conversions(pairs[j][1]) for j in positions]),
            )
            stats = control.take(pos), treatment.take(pos)
            fill(positions, sequential_columns(spec, *stats, looks, conversions))
        if spec.bayesian:
            fill(positions, bayes_columns(_take(base, pos)))
    cuped = [j for j, (c_row, t_row) in enumerate(pairs)
             if specs[t_row.experiment].cuped is not None and _has_covariate(c_row, t_row)]  # fmt: skip
    if cuped:
        alpha = np.array([specs[pairs[j][1].experiment].alpha for j in cuped])
        fill(cuped, cuped_columns([pairs[j] for j in cuped], alpha, _take(base, np.asarray(cuped))))
    return out


def _conversions(row: ResultRow | None) -> int:
    """A group's conversions for the gambler's ruin: users with the metric (0 if no row)."""
    return 0 if row is None else row.propensity


# -- sequential ------------------------------------------------------------------------------


def _bonferroni(spec: AnalysisSpec, c: Stats, t: Stats, look: np.ndarray) -> SequentialResult:
    from stats.sequential.bonferroni_looks import bonferroni_over_looks

    assert spec.looks is not None
    return bonferroni_over_looks(c, t, look, spec.looks, spec.alpha)


def _spending(spec: AnalysisSpec, c: Stats, t: Stats, look: np.ndarray) -> SequentialResult:
    from stats.sequential.alpha_spending import group_sequential

    assert spec.looks is not None
    fractions = [k / spec.looks for k in range(1, spec.looks + 1)]
    return group_sequential(c, t, look, fractions, spec.alpha, spending=spec.sequential)


def _msprt(spec: AnalysisSpec, c: Stats, t: Stats, look: np.ndarray) -> SequentialResult:
    from stats.sequential.msprt import msprt

    return msprt(c, t, alpha=spec.alpha)


def _confidence_sequence(
    spec: AnalysisSpec, c: Stats, t: Stats, look: np.ndarray
) -> SequentialResult:
    from stats.sequential.confidence_sequence import asymptotic_cs

    return asymptotic_cs(c, t, alpha=spec.alpha)


# The methods judged on the comparison of each look; ``gamblers_ruin`` counts conversions.
SEQUENTIAL: dict[str, Callable[[AnalysisSpec, Any, Any, np.ndarray], SequentialResult]] = {
    "bonferroni_looks": _bonferroni,
    "obrien_fleming": _spending,
    "pocock": _spending,
    "msprt": _msprt,
    "confidence_sequence": _confidence_sequence,
}


def sequential_columns(
    spec: AnalysisSpec,
    control: Stats,
    treatment: Stats,
    look: np.ndarray,
    conversions: tuple[np.ndarray, np.ndarray],
) -> Columns:
    """The ``seq_*`` columns of one experiment's comparisons at their looks."""
    if spec.sequential == "gamblers_ruin":
        return _ruin_columns(spec, *conversions)
    from stats.codes import Code
    from stats.lift import _NO_INFERENCE

    result = SEQUENTIAL[spec.sequential](spec, control, treatment, look)
    cmp = result.comparison
    # A look without inference of its own has no p-value here: the mixture methods' carried
    # running p-value is a stream's state, and a batch look stands alone.
    p_value = np.where(np.isin(cmp.code, _NO_INFERENCE), np.nan, cmp.p_value)
    planned_end = look == spec.looks if spec.looks is not None else np.zeros(look.shape, bool)
    decisions = []
    for code, reject, lift, last in zip(
        cmp.code.tolist(),
        result.reject.tolist(),
        plain(cmp.lift_abs),
        planned_end.tolist(),
        strict=True,
    ):
        if code == Code.PAST_LAST_LOOK:
            decisions.append("past_last_look")
        elif reject:
            decisions.append("treatment_higher" if (lift or 0.0) > 0 else "treatment_lower")
        elif last and code in (Code.OK, Code.ZERO_CONTROL_MEAN):
            decisions.append("no_difference")
        else:
            decisions.append("continue")
    return {
        "seq_decision": decisions,
        "seq_p_value": plain(p_value),
        "seq_alpha": plain(np.where(np.isnan(p_value), np.nan, result.nominal_alpha)),
        "seq_ci_low": plain(cmp.ci_low),
        "seq_ci_high": plain(cmp.ci_high),
        "seq_rel_ci_low": plain(cmp.rel_ci_low),
        "seq_rel_ci_high": plain(cmp.rel_ci_high),
    }


def _ruin_columns(spec: AnalysisSpec, control: np.ndarray, treatment: np.ndarray) -> Columns:
    from stats.sequential.gamblers_ruin import Decision, gamblers_ruin

    assert spec.total_conversions is not None
    labels = {
        Decision.CONTINUE: "continue",
        Decision.TREATMENT_BETTER: "treatment_higher",
        Decision.CONTROL_BETTER: "treatment_lower",
        Decision.NO_DIFFERENCE: "no_difference",
        Decision.INVALID_INPUT: "invalid_input",
    }
    decisions = gamblers_ruin(control, treatment, spec.total_conversions, spec.alpha)
    blank: list[Any] = [None] * len(decisions)
    return {
        "seq_decision": [labels[Decision(int(d))] for d in decisions],
        **{name: blank for name in SEQUENTIAL_FIELDS[1:]},
    }


# -- Bayes and CUPED ---------------------------------------------------------------------------


def bayes_columns(base: Comparison) -> Columns:
    """Chance that the relative lift is above 0, and the expected loss of shipping treatment."""
    from stats.bayes import posterior

    post = posterior(base, relative=True)
    return {
        "prob_beat_control": plain(post.chance_to_win),
        "expected_loss": plain(post.risk_treatment),
    }


def cuped_columns(
    pairs: Sequence[tuple[ResultRow | None, ResultRow]], alpha: np.ndarray, base: Comparison
) -> Columns:
    """CUPED comparisons (pooled ``theta``) and ``1 - var(adjusted lift) / var(lift)``."""
    from stats.cuped import cuped
    from stats.sufficient import CovariateStats

    control = CovariateStats.stack([_covariate_stats(c) for c, _ in pairs])
    treatment = CovariateStats.stack([_covariate_stats(t) for _, t in pairs])
    adjusted = cuped(control, treatment, alpha=alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        reduction = np.where(base.se > 0, 1.0 - adjusted.se**2 / base.se**2, np.nan)
    return {
        "cuped_lift_abs": plain(adjusted.lift_abs),
        "cuped_lift_rel": plain(adjusted.lift_rel),
        "cuped_ci_low": plain(adjusted.ci_low),
        "cuped_ci_high": plain(adjusted.ci_high),
        "cuped_rel_ci_low": plain(adjusted.rel_ci_low),
        "cuped_rel_ci_high": plain(adjusted.rel_ci_high),
        "cuped_p_value": plain(adjusted.p_value),
        "variance_reduction": plain(reduction),
    }


def _has_covariate(control: ResultRow | None, treatment: ResultRow) -> bool:
    return treatment.pre_sum is not None and (control is None or control.pre_sum is not None)


def _covariate_stats(row: ResultRow | None) -> Any:
    from stats.sufficient import CovariateStats

    if row is None:
        return CovariateStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    return CovariateStats(
        float(row.n), float(row.sum), float(row.sum_sq), float(row.pre_sum or 0.0),
        float(row.pre_sum_sq or 0.0), float(row.pre_sum_xy or 0.0),
    )  # fmt: skip


def _take(comparison: Comparison, pos: np.ndarray) -> Comparison:
    from dataclasses import fields

    from stats.lift import Comparison

    return Comparison(
        **{f.name: np.asarray(getattr(comparison, f.name))[pos] for f in fields(comparison)}
    )
