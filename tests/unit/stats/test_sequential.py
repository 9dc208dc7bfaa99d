"""Sequential methods: boundaries, stopping rules and always-valid intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from stats.codes import Code
from stats.ratio import delta_ratio
from stats.sequential.alpha_spending import boundaries, group_sequential, spent
from stats.sequential.bonferroni_looks import bonferroni_over_looks
from stats.sequential.confidence_sequence import asymptotic_cs
from stats.sequential.gamblers_ruin import Decision, gamblers_ruin, ruin_probability, threshold
from stats.sequential.msprt import msprt
from stats.sufficient import RatioStats, SampleStats
from stats.ttest import welch

FIVE = [0.2, 0.4, 0.6, 0.8, 1.0]


def test_obrien_fleming_and_pocock_boundaries_match_published_tables() -> None:
    # Lan-DeMets boundaries, five equal looks, two-sided alpha 0.05 (ldbounds / gsDesign).
    np.testing.assert_allclose(
        boundaries(FIVE, 0.05, "obrien_fleming"), [4.877, 3.357, 2.680, 2.290, 2.031], atol=2e-3
    )
    np.testing.assert_allclose(
        boundaries(FIVE, 0.05, "pocock"), [2.438, 2.427, 2.410, 2.397, 2.386], atol=2e-3
    )


@pytest.mark.parametrize("spending", ["obrien_fleming", "pocock", "power"])
def test_spending_functions_spend_alpha_exactly_at_the_end(spending: str) -> None:
    assert spent(np.array([0.0]), 0.05, spending)[0] == 0.0
    assert spent(np.array([1.0]), 0.05, spending)[0] == pytest.approx(0.05)
    assert np.all(np.diff(spent(np.linspace(0, 1, 50), 0.05, spending)) >= 0)


def test_single_look_is_the_fixed_horizon_test() -> None:
    assert boundaries([1.0], 0.05, "obrien_fleming")[0] == pytest.approx(1.959964, abs=1e-5)


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="increase"):
        boundaries([0.5, 0.4])


def make(n: int, mean: float, seed: int) -> SampleStats:
    return SampleStats.from_values(np.random.default_rng(seed).normal(mean, 1.0, n))


def test_boundary_methods_are_stricter_than_the_naive_test_early() -> None:
    c, t = make(400, 0.0, 1), make(400, 0.2, 2)
    naive = welch(c, t)
    obf = group_sequential(c, t, look=1, fractions=FIVE)
    bonf = bonferroni_over_looks(c, t, look=1, max_looks=5)
    assert obf.nominal_alpha < bonf.nominal_alpha < 0.05
    assert obf.comparison.ci_high - obf.comparison.ci_low > naive.ci_high - naive.ci_low
    assert bool(obf.reject) == (float(naive.p_value) <= float(obf.nominal_alpha))


def test_looks_past_the_plan_get_a_code() -> None:
    c, t = make(100, 0.0, 3), make(100, 0.0, 4)
    late = bonferroni_over_looks(
        SampleStats.stack([c, c]), SampleStats.stack([t, t]), look=np.array([5, 6]), max_looks=5
    )
    assert list(late.comparison.code) == [Code.OK, Code.PAST_LAST_LOOK]
    assert np.isnan(late.comparison.p_value[1]) and not late.reject[1]
    assert (
        int(group_sequential(c, t, look=6, fractions=FIVE).comparison.code) == Code.PAST_LAST_LOOK
    )


def test_looks_before_the_first_are_invalid() -> None:
    c, t = make(100, 0.0, 3), make(100, 0.0, 4)
    both = SampleStats.stack([c, c, c]), SampleStats.stack([t, t, t])
    looks = np.array([0, -1, 1])
    for result in (
        bonferroni_over_looks(*both, look=looks, max_looks=5),
        group_sequential(*both, look=looks, fractions=FIVE),
    ):
        assert list(result.comparison.code) == [Code.INVALID_INPUT, Code.INVALID_INPUT, Code.OK]
        assert np.isnan(result.comparison.p_value[:2]).all() and not result.reject[:2].any()


def test_msprt_interval_is_wider_than_fixed() -> None:
    c, t = make(2000, 0.0, 5), make(2000, 0.15, 6)
    fixed = welch(c, t)
    seq = msprt(c, t)
    assert seq.comparison.ci_low < fixed.ci_low and seq.comparison.ci_high > fixed.ci_high
    assert seq.comparison.ci_low < seq.comparison.lift_abs < seq.comparison.ci_high


def test_msprt_running_p_is_the_minimum_of_independently_computed_per_look_p_values() -> None:
    # Per-look p-values from the raw units by Johari et al.'s formula, not through stats/:
    # 1/Lambda with Lambda = sqrt(V/(V+tau^2)) exp(d^2 tau^2 / (2V(V+tau^2))), V = se^2,
    # tau^2 = 0.1^2 (var_c + var_t)/2. This path's per-look p dips to 0.106 at look 7 and
    # rises to 0.66 at look 8, so the running minimum is not simply the last value.
    rng = np.random.default_rng(12)
    c_all, t_all = rng.normal(0, 1, 8000), rng.normal(0.03, 1, 8000)
    state, per_look = 1.0, []
    for n in range(1000, 8001, 1000):
        c, t = c_all[:n], t_all[:n]
        var = c.var(ddof=1) / n + t.var(ddof=1) / n
        tau2 = 0.01 * (c.var(ddof=1) + t.var(ddof=1)) / 2
        d = t.mean() - c.mean()
        lam = np.sqrt(var / (var + tau2)) * np.exp(d**2 * tau2 / (2 * var * (var + tau2)))
        per_look.append(min(1.0, 1 / lam))
        result = msprt(SampleStats.from_values(c), SampleStats.from_values(t), previous_p=state)
        state = float(result.comparison.p_value)
        assert state == pytest.approx(min(per_look), rel=1e-9)
    assert per_look[-1] > 5 * state and min(per_look) == per_look[6]


def test_msprt_degenerate_input_keeps_the_code() -> None:
    result = msprt(SampleStats(0, 0, 0), make(10, 0, 9))
    assert int(result.comparison.code) == Code.EMPTY_GROUP and not result.reject


def test_ruin_probability_matches_a_brute_force_walk() -> None:
    def walk(steps: int, d: int) -> float:
        p = np.zeros(2 * d + 1)
        p[d], hit = 1.0, 0.0
        for _ in range(steps):
            q = np.zeros_like(p)
            q[1:] += 0.5 * p[:-1]
            q[:-1] += 0.5 * p[1:]
            hit += q[0] + q[-1]
            q[0] = q[-1] = 0.0
            p = q
        return hit

    for steps, d in [(10, 3), (101, 7), (500, 45), (1000, 62)]:
        assert ruin_probability(steps, d) == pytest.approx(walk(steps, d), abs=1e-12)


def test_gamblers_ruin_threshold_and_decisions() -> None:
    d = threshold(1000, 0.05)
    assert ruin_probability(1000, d) <= 0.05 < ruin_probability(1000, d - 1)
    assert abs(d - 2 * np.sqrt(1000)) < 0.2 * d  # close to Evan Miller's 2 sqrt(N)
    decisions = gamblers_ruin(
        np.array([100, 100 + d, 490, 10, -1]), np.array([100 + d, 100, 510, 12, 3]), total=1000
    )
    assert list(decisions) == [
        Decision.TREATMENT_BETTER,
        Decision.CONTROL_BETTER,
        Decision.NO_DIFFERENCE,
        Decision.CONTINUE,
        Decision.INVALID_INPUT,
    ]


def test_gamblers_ruin_look_past_total_is_no_difference() -> None:
    total = 400
    d = threshold(total, 0.05)
    # A lead of d seen only after the planned total: the walk may have crossed before
    # total (already covered by alpha) or after it (not covered); no winner either way.
    late = gamblers_ruin(np.array([330, 330 + d]), np.array([330 + d, 330]), total=total)
    assert list(late) == [Decision.NO_DIFFERENCE, Decision.NO_DIFFERENCE]
    # Up to and including the total-th conversion the lead still decides (d = 45 here).
    c = (total - 1 - d) // 2
    on_time = gamblers_ruin(np.array([c, c]), np.array([c + d, c + d + 1]), total=total)
    assert list(on_time) == [Decision.TREATMENT_BETTER, Decision.TREATMENT_BETTER]


def test_gamblers_ruin_with_a_late_look_keeps_false_positives_at_alpha() -> None:
    # Null walks observed every 20 conversions up to total = 400, then once more at 700
    # (a late daily batch): the late look once took the false-positive rate to 0.10.
    rng = np.random.default_rng(6)
    sims, total = 20_000, 400
    walk = np.cumsum(rng.choice(np.array([-1, 1], dtype=np.int16), (sims, 700)), axis=1)
    looks = np.r_[np.arange(20, total, 20), 700]
    lead = walk[:, looks - 1]
    decisions = gamblers_ruin((looks - lead) // 2, (looks + lead) // 2, total, 0.05)
    first = (decisions != Decision.CONTINUE).argmax(axis=1)
    final = decisions[np.arange(sims), first]
    rate = np.isin(final, [Decision.TREATMENT_BETTER, Decision.CONTROL_BETTER]).mean()
    # Binomial(20000, 0.05) 99.9% quantile is 0.0551; the exact per-step rate is below 0.05.
    assert rate <= 0.0551, rate


def test_msprt_degenerate_look_carries_the_running_p_value() -> None:
    c, t = make(5000, 0.0, 10), make(5000, 0.5, 11)
    fresh = float(msprt(c, t).comparison.p_value)
    # Look 1: control has one unit, so this look has no p-value of its own.
    first = msprt(SampleStats.from_values([1.0]), make(5, 0.0, 12))
    assert int(first.comparison.code) == Code.TOO_FEW_UNITS
    assert float(first.comparison.p_value) == 1.0 and not first.reject
    # It must not poison the stream's state (it used to make every later p NaN).
    second = msprt(c, t, previous_p=first.comparison.p_value)
    assert float(second.comparison.p_value) == fresh < 1e-100 and second.reject
    # A later degenerate look keeps the running p-value, but decides nothing itself.
    third = msprt(SampleStats(0, 0, 0), t, previous_p=second.comparison.p_value)
    assert int(third.comparison.code) == Code.EMPTY_GROUP
    assert float(third.comparison.p_value) == fresh and not third.reject
    # A NaN stored by an older version is ignored, not propagated.
    assert float(msprt(c, t, previous_p=np.nan).comparison.p_value) == fresh


def test_asymptotic_cs_running_minimum_over_looks() -> None:
    c, t = make(3000, 0.0, 13), make(3000, 0.08, 14)
    fresh = float(asymptotic_cs(c, t).comparison.p_value)  # gbstats' per-look value
    assert 0 < fresh < 1
    assert float(asymptotic_cs(c, t, previous_p=fresh / 2).comparison.p_value) == fresh / 2
    assert float(asymptotic_cs(c, t, previous_p=0.999).comparison.p_value) == min(fresh, 0.999)
    assert float(asymptotic_cs(c, t, previous_p=np.nan).comparison.p_value) == fresh
    empty = asymptotic_cs(SampleStats(0, 0, 0), t, previous_p=fresh)
    assert float(empty.comparison.p_value) == fresh and not empty.reject


# ---------------------------------------------------------------------------- ratio metrics


def _ratio_case(seed: int) -> tuple[RatioStats, RatioStats]:
    rng = np.random.default_rng(seed)
    stats = []
    for shift in (0.0, 0.1):
        den = rng.poisson(5.0, 3000) + 1.0
        num = rng.binomial(den.astype(int), 0.3 + shift).astype(float)
        stats.append(RatioStats.from_values(num, den))
    return stats[0], stats[1]


@pytest.mark.parametrize(
    "method",
    [
        lambda c, t: bonferroni_over_looks(c, t, look=2, max_looks=4),
        lambda c, t: group_sequential(c, t, look=2, fractions=FIVE),
        lambda c, t: msprt(c, t),
        lambda c, t: asymptotic_cs(c, t),
    ],
    ids=["bonferroni_looks", "alpha_spending", "msprt", "asymptotic_cs"],
)
def test_a_ratio_with_unit_denominators_is_the_mean_of_its_numerators(method: object) -> None:
    # Every unit's denominator is 1: the ratio is the numerators' mean, and the delta
    # method's unit variance is their plain variance, so each method agrees with its Welch form.
    rng = np.random.default_rng(21)
    num_c, num_t = rng.exponential(2.0, 800), rng.exponential(2.3, 700)
    ratio = method(  # type: ignore[operator]
        RatioStats.from_values(num_c, np.ones_like(num_c)),
        RatioStats.from_values(num_t, np.ones_like(num_t)),
    )
    plain = method(SampleStats.from_values(num_c), SampleStats.from_values(num_t))  # type: ignore[operator]
    for name in ("lift_abs", "ci_low", "ci_high", "rel_ci_low", "rel_ci_high", "p_value"):
        assert float(getattr(ratio.comparison, name)) == pytest.approx(
            float(getattr(plain.comparison, name)), rel=1e-9
        ), name
    assert float(ratio.nominal_alpha) == float(plain.nominal_alpha)
    assert bool(ratio.reject) == bool(plain.reject)


def test_boundary_methods_judge_the_delta_method_comparison_at_their_level() -> None:
    c, t = _ratio_case(22)
    bonf = bonferroni_over_looks(c, t, look=1, max_looks=4, alpha=0.05)
    direct = delta_ratio(c, t, alpha=0.05 / 4)
    assert float(bonf.comparison.p_value) == float(direct.p_value)
    assert float(bonf.comparison.ci_low) == float(direct.ci_low)
    assert float(bonf.nominal_alpha) == 0.05 / 4
    level = 2 * norm.sf(boundaries(FIVE, 0.05, "pocock")[2])  # scipy, not stats/
    spent_look = group_sequential(c, t, look=3, fractions=FIVE, spending="pocock")
    assert float(spent_look.nominal_alpha) == pytest.approx(level, rel=1e-12)
    assert float(spent_look.comparison.ci_high) == pytest.approx(
        float(delta_ratio(c, t, alpha=level).ci_high), rel=1e-12
    )
