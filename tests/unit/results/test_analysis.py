"""The analysis settings reach the result rows: every column equals its ``stats`` function.

``compare_groups`` is given rows of several experiments at once, each configured with one
sequential method (plus Bayes and CUPED on some), and must fill exactly the columns each
experiment asks for, with the values the ``stats`` functions return on the rows' own
sufficient statistics. (The statistics themselves are checked against scipy, statsmodels
and published references in tests/unit/stats.)
"""

from __future__ import annotations

from datetime import date
from typing import Any, get_args

import numpy as np
import pytest

from results.analysis import BAYES_FIELDS, CUPED_FIELDS, SEQUENTIAL, SEQUENTIAL_FIELDS, look_of
from results.comparisons import compare_groups
from results.schema import ResultRow
from stats.bayes import posterior
from stats.cuped import cuped
from stats.ratio import delta_ratio
from stats.sequential.alpha_spending import group_sequential
from stats.sequential.bonferroni_looks import bonferroni_over_looks
from stats.sequential.confidence_sequence import asymptotic_cs
from stats.sequential.gamblers_ruin import Decision, gamblers_ruin
from stats.sequential.msprt import msprt
from stats.sufficient import CovariateStats, RatioStats, SampleStats
from stats.ttest import welch
from tests.support.result_rows import make_row
from udf.config.catalog import Sequential

DAY_MS = 86_400_000
START = 1_767_225_600_000 + 6 * 3_600_000  # 2026-01-01 06:00 UTC

ANALYSIS: dict[str, dict[str, Any]] = {
    "e_bonf": {"sequential": "bonferroni_looks", "looks": 3},
    "e_obf": {"sequential": "obrien_fleming", "looks": 4, "alpha": 0.1},
    "e_pocock": {"sequential": "pocock", "looks": 2, "bayesian": True},
    "e_msprt": {"sequential": "msprt", "cuped": {"pre_days": 7}},
    "e_cs": {"sequential": "confidence_sequence", "alpha": 0.01},
    "e_ruin": {"sequential": "gamblers_ruin", "total_conversions": 700},
    "e_plain": {},
    "e_bayes_cuped": {"bayesian": True, "cuped": {"pre_days": 3}},
}
CONTROLS = frozenset((e, "control") for e in ANALYSIS)


def test_every_sequential_method_of_the_catalog_has_its_wiring() -> None:
    assert set(get_args(Sequential)) == {"none", "gamblers_ruin", *SEQUENTIAL}


def test_look_is_the_day_of_the_period() -> None:
    assert look_of("2026-01-01", START) == 1  # the period's first (partial) date
    assert look_of("2026-01-02", START) == 2
    assert look_of("2026-01-04", START) == 4  # the date a 3-day period ends on
    midnight = 1_767_225_600_000
    assert [look_of(f"2026-01-0{d}", midnight) for d in (1, 2, 3)] == [1, 2, 3]
    assert look_of("2026-01-02", midnight + DAY_MS - 1) == 2
    assert look_of("2026-01-02", midnight + DAY_MS) == 1


def _rows(rng: np.random.Generator) -> list[ResultRow]:
    """Control and treatment rows for every experiment: a count metric at looks 1..5 (a
    covariate where CUPED is asked for) and a ratio metric at look 2."""
    rows = []
    for experiment, spec in ANALYSIS.items():
        for look in (1, 2, 3, 4, 5):
            day = date.fromordinal(date(2026, 1, 1).toordinal() + look - 1).isoformat()
            for group, shift in (("control", 0.0), ("treatment", 0.15)):
                n = int(rng.integers(300, 400)) * look
                base = rng.gamma(2.0, 1.0, n)
                pre = rng.poisson(base * 2).astype(float)
                post = rng.poisson(base * (2 + shift)).astype(float)
                covariate: dict[str, Any] = {}
                if "cuped" in spec:
                    covariate = dict(pre_sum=pre.sum(), pre_sum_sq=(pre * pre).sum(),
                                     pre_sum_xy=(pre * post).sum())  # fmt: skip
                rows.append(make_row(
                    experiment=experiment, group=group, date=day, look=look, period_start=START,
                    n=n, exposed=n, sum=post.sum(), sum_sq=(post * post).sum(),
                    propensity=int((post > 0).sum()), **covariate,
                ))  # fmt: skip
                if look == 2:
                    den = rng.poisson(4.0, n) + 1.0
                    num = rng.binomial(den.astype(int), 0.3 + shift / 3).astype(float)
                    rows.append(make_row(
                        experiment=experiment, group=group, date=day, look=look,
                        period_start=START, metric="ctr", n=n, exposed=n, sum=num.sum(),
                        sum_sq=(num * num).sum(), den_sum=den.sum(), den_sum_sq=(den * den).sum(),
                        sum_xy=(num * den).sum(), propensity=int((num > 0).sum()),
                    ))  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def compared() -> tuple[list[ResultRow], list[ResultRow]]:
    rows = _rows(np.random.default_rng(5))
    out = []
    for day in sorted({r.date for r in rows}):  # one slice (date) at a time, as compute does
        out += compare_groups([r for r in rows if r.date == day], CONTROLS, ANALYSIS)
    return sorted(rows, key=lambda r: r.date), out


def _stats(row: ResultRow) -> SampleStats | RatioStats:
    if row.den_sum is not None:
        return RatioStats(row.n, row.sum, row.sum_sq, row.den_sum, row.den_sum_sq, row.sum_xy)
    return SampleStats(row.n, row.sum, row.sum_sq)


def _pairs(rows: list[ResultRow], experiment: str) -> list[tuple[ResultRow, ResultRow]]:
    control = {(r.metric, r.date): r for r in rows
               if r.experiment == experiment and r.group == "control"}  # fmt: skip
    return [(control[(t.metric, t.date)], t) for t in rows
            if t.experiment == experiment and t.group == "treatment"]  # fmt: skip


def _expected_decision(result: Any, look: int, planned: int | None) -> str:
    if int(result.comparison.code) == 7:
        return "past_last_look"
    if bool(result.reject):
        return "treatment_higher" if float(result.comparison.lift_abs) > 0 else "treatment_lower"
    return "no_difference" if look == planned else "continue"


def _num(value: Any) -> float | None:
    v = float(np.asarray(value).reshape(-1)[0])
    return None if np.isnan(v) else v


OBF = [0.25, 0.5, 0.75, 1.0]
METHODS = {
    "e_bonf": lambda c, t, look: bonferroni_over_looks(c, t, look, 3, 0.05),
    "e_obf": lambda c, t, look: group_sequential(c, t, look, OBF, 0.1, "obrien_fleming"),
    "e_pocock": lambda c, t, look: group_sequential(c, t, look, [0.5, 1.0], 0.05, "pocock"),
    "e_msprt": lambda c, t, look: msprt(c, t, alpha=0.05),
    "e_cs": lambda c, t, look: asymptotic_cs(c, t, alpha=0.01),
}
PLANNED = {"e_bonf": 3, "e_obf": 4, "e_pocock": 2}


@pytest.mark.parametrize("experiment", list(METHODS))
def test_sequential_columns_equal_the_stats_function(
    compared: tuple[list[ResultRow], list[ResultRow]], experiment: str
) -> None:
    _, out = compared
    decisions = set()
    for c, t in _pairs(out, experiment):
        result = METHODS[experiment](_stats(c), _stats(t), t.look)
        cmp = result.comparison
        expected = {
            "seq_p_value": _num(cmp.p_value), "seq_ci_low": _num(cmp.ci_low),
            "seq_ci_high": _num(cmp.ci_high), "seq_rel_ci_low": _num(cmp.rel_ci_low),
            "seq_rel_ci_high": _num(cmp.rel_ci_high),
            "seq_alpha": None if _num(cmp.p_value) is None else _num(result.nominal_alpha),
        }  # fmt: skip
        for name, value in expected.items():
            assert getattr(t, name) == value, (t.metric, t.look, name)
        decision = _expected_decision(result, t.look, PLANNED.get(experiment))
        assert t.seq_decision == decision, (t.metric, t.look)
        decisions.add(decision)
    if experiment in PLANNED:  # the plan ends: looks after it are past the last look
        assert "past_last_look" in decisions
    assert decisions & {"treatment_higher", "treatment_lower"}  # the 15% lift is found


def test_gamblers_ruin_decides_on_conversions(
    compared: tuple[list[ResultRow], list[ResultRow]],
) -> None:
    _, out = compared
    labels = {Decision.CONTINUE: "continue", Decision.TREATMENT_BETTER: "treatment_higher",
              Decision.CONTROL_BETTER: "treatment_lower", Decision.NO_DIFFERENCE: "no_difference"}  # fmt: skip
    seen = set()
    for c, t in _pairs(out, "e_ruin"):
        [decision] = gamblers_ruin(np.array([c.propensity]), np.array([t.propensity]), 700, 0.05)
        assert t.seq_decision == labels[Decision(int(decision))]
        assert all(getattr(t, f) is None for f in SEQUENTIAL_FIELDS[1:])
        seen.add(t.seq_decision)
    assert "no_difference" in seen  # later looks are past the 700 planned conversions


@pytest.mark.parametrize("experiment", ["e_pocock", "e_bayes_cuped"])
def test_bayes_columns_equal_the_posterior(
    compared: tuple[list[ResultRow], list[ResultRow]], experiment: str
) -> None:
    _, out = compared
    for c, t in _pairs(out, experiment):
        base = (delta_ratio if t.den_sum is not None else welch)(_stats(c), _stats(t))  # type: ignore[operator]
        post = posterior(base, relative=True)
        assert t.prob_beat_control == _num(post.chance_to_win)
        assert t.expected_loss == _num(post.risk_treatment)
        assert 0 < t.prob_beat_control < 1 and t.expected_loss >= 0


@pytest.mark.parametrize("experiment", ["e_msprt", "e_bayes_cuped"])
def test_cuped_columns_equal_the_stats_function(
    compared: tuple[list[ResultRow], list[ResultRow]], experiment: str
) -> None:
    _, out = compared
    count_rows = [(c, t) for c, t in _pairs(out, experiment) if t.den_sum is None]
    assert count_rows
    for c, t in count_rows:
        cov = [CovariateStats(r.n, r.sum, r.sum_sq, r.pre_sum, r.pre_sum_sq, r.pre_sum_xy)
               for r in (c, t)]  # fmt: skip
        adjusted = cuped(*cov, alpha=0.05)
        plain = welch(_stats(c), _stats(t))  # type: ignore[arg-type]
        assert t.cuped_lift_abs == _num(adjusted.lift_abs)
        assert t.cuped_ci_low == _num(adjusted.ci_low)
        assert t.cuped_ci_high == _num(adjusted.ci_high)
        assert t.cuped_rel_ci_high == _num(adjusted.rel_ci_high)
        assert t.cuped_p_value == _num(adjusted.p_value)
        reduction = 1 - float(adjusted.se) ** 2 / float(plain.se) ** 2
        assert t.variance_reduction == pytest.approx(reduction, rel=1e-12)
        assert 0.2 < t.variance_reduction < 1  # the covariate predicts the metric
    # a ratio metric of the same experiment has no covariate and no CUPED columns
    ratio = [t for _, t in _pairs(out, experiment) if t.den_sum is not None]
    assert ratio and all(getattr(t, f) is None for t in ratio for f in CUPED_FIELDS)


def test_only_what_is_asked_for_is_filled(
    compared: tuple[list[ResultRow], list[ResultRow]],
) -> None:
    rows, out = compared
    for before, after in zip(rows, out, strict=True):
        spec = ANALYSIS[after.experiment]
        if after.group == "control":
            assert after == before  # control rows are never changed
            continue
        assert after.lift_abs is not None and after.p_value_adjusted is not None
        assert (after.seq_decision != "") == ("sequential" in spec)
        has_bayes = any(getattr(after, f) is not None for f in BAYES_FIELDS)
        assert has_bayes == spec.get("bayesian", False)
        has_cuped = any(getattr(after, f) is not None for f in CUPED_FIELDS)
        assert has_cuped == ("cuped" in spec and after.den_sum is None)


def test_a_missing_control_gives_no_sequential_answer() -> None:
    t = make_row(experiment="e_msprt", group="treatment", look=1, n=50, sum=20.0, sum_sq=30.0)
    [row] = compare_groups([t], CONTROLS, ANALYSIS)
    assert row.status == "empty_group" and row.seq_decision == "continue"
    assert row.seq_p_value is None and row.seq_alpha is None and row.seq_ci_low is None
