"""Sample-ratio mismatch: chi-square against scipy, and the sequential checks against
optimizely's ``ssrm-test`` (tests/data/stats/ssrm_test.json, made by make_references.py)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from stats.codes import Code
from stats.srm import chi_square, sequential, stratified

PEER = json.loads((Path(__file__).parents[2] / "data" / "stats" / "ssrm_test.json").read_text())[
    "cases"
]


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


@pytest.mark.parametrize("concentration", [100.0, 10000.0])
def test_sequential_srm_matches_ssrm_test_look_by_look(concentration: float) -> None:
    """The peer takes each look's new units; we take the cumulative counts and carry the
    running p-value, as the stream does."""
    looks = 0
    for case in PEER:
        counts, p = np.zeros(len(case["null"])), 1.0
        expected = case[f"p_values_{concentration:g}"]
        for batch, peer_p in zip(case["batches"], expected, strict=True):
            counts = counts + batch
            p = float(sequential(counts, case["null"], p, concentration).p_value)
            assert p == pytest.approx(peer_p, rel=1e-9, abs=1e-300), case
            looks += 1
    assert looks > 300
    # the reference cases include both verdicts
    finals = [c["p_values_100"][-1] for c in PEER]
    assert min(finals) < 1e-10 and max(finals) > 0.5


def test_stratified_srm_multiplies_the_strata_mixtures() -> None:
    """Two streams with their own allocations, as two stretches between ramps: the combined
    evidence is the product of the peer's Bayes factors of each."""
    pairs = [(a, b) for a, b in itertools.combinations(PEER, 2) if len(a["null"]) == len(b["null"])]
    assert len(pairs) >= 20
    for a, b in pairs:
        counts = np.array([np.sum(a["batches"], axis=0), np.sum(b["batches"], axis=0)])
        bf = a["bayes_factors_100"][-1] * b["bayes_factors_100"][-1]
        expected = min(1.0, 1.0 / bf) if bf > 0 else 1.0
        assert stratified(counts, np.array([a["null"], b["null"]])) == pytest.approx(
            expected, rel=1e-9, abs=1e-300
        )
    # one stratum is the plain sequential test
    one = PEER[2]
    total = np.sum(one["batches"], axis=0)
    assert stratified(total[None], np.array([one["null"]])) == pytest.approx(
        min(1.0, 1.0 / one["bayes_factors_100"][-1]), rel=1e-9, abs=1e-300
    )


def test_stratified_srm_ignores_empty_and_impossible_strata() -> None:
    skewed = [600.0, 400.0]
    alone = stratified(np.array([skewed]), np.array([[1.0, 1.0]]))
    assert alone < 1e-5
    # a stretch without users, and one with users in a group its allocation gave 0
    padded = np.array([skewed, [0.0, 0.0], [3.0, 2.0]])
    weights = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    assert stratified(padded, weights) == pytest.approx(alone, rel=1e-12)
    assert stratified(np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]), previous_p=0.2) == 0.2
    # the running minimum: a later, weaker look does not raise it
    assert stratified(np.array([[500.0, 500.0]]), np.array([[1.0, 1.0]]), previous_p=alone) == alone
