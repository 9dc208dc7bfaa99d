"""Sample-ratio mismatch: chi-square against scipy, and the sequential check."""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats as sps

from stats.codes import Code
from stats.srm import chi_square, sequential


def test_chi_square_matches_scipy() -> None:
    rng = np.random.default_rng(30)
    weights = np.array([0.5, 0.3, 0.2])
    counts = rng.multinomial(5000, [0.48, 0.32, 0.2], size=50)
    result = chi_square(counts, weights)
    for row, p in zip(counts, result.p_value, strict=True):
        assert np.isclose(p, sps.chisquare(row, weights * row.sum()).pvalue, rtol=1e-9)


def test_empty_and_impossible_counts_get_codes() -> None:
    result = chi_square(np.array([[0, 0], [-1, 5]]), [1, 1])
    assert list(result.code) == [Code.EMPTY_GROUP, Code.INVALID_INPUT]
    assert np.isnan(result.p_value).all()


def test_sequential_srm_is_monotone_and_flags_a_real_mismatch() -> None:
    rng = np.random.default_rng(31)
    p, history = 1.0, []
    counts = np.zeros(2)
    for _ in range(40):
        counts = counts + rng.multinomial(500, [0.53, 0.47])
        p = sequential(counts, [1, 1], previous_p=p).p_value
        history.append(float(p))
    assert all(a >= b for a, b in itertools.pairwise(history))
    assert history[-1] < 1e-4
    balanced = sequential(np.array([10_000, 10_050]), [1, 1])
    assert float(balanced.p_value) > 0.5


def test_sequential_srm_degenerate_look_carries_the_running_p_value() -> None:
    skewed = np.array([6000.0, 4000.0])
    fresh = float(sequential(skewed, [1, 1]).p_value)
    invalid = sequential(np.array([-1.0, 5.0]), [1, 1], previous_p=0.3)
    assert int(invalid.code) == Code.INVALID_INPUT and float(invalid.p_value) == 0.3
    first = sequential(np.array([-1.0, 5.0]), [1, 1])
    # It used to be NaN, and every later p-value of the stream NaN too.
    after = sequential(skewed, [1, 1], previous_p=first.p_value)
    assert float(after.p_value) == fresh < 1e-10
    assert float(sequential(skewed, [1, 1], previous_p=np.nan).p_value) == fresh
    columns = sequential(np.array([[0.0, 0.0], [-1.0, 5.0]]), [1, 1], previous_p=[0.2, 0.4])
    assert list(columns.p_value) == [0.2, 0.4]
