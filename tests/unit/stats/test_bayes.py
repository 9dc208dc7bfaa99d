"""Bayesian summaries: closed forms against posterior sampling."""

from __future__ import annotations

import numpy as np
import pytest

from stats.bayes import GaussianPrior, posterior
from stats.codes import Code
from stats.sufficient import SampleStats
from stats.ttest import welch


def test_chance_to_win_and_expected_loss_match_posterior_draws() -> None:
    c = SampleStats.from_values(np.random.default_rng(1).normal(10, 3, 500))
    t = SampleStats.from_values(np.random.default_rng(2).normal(10.3, 3, 500))
    cmp = welch(c, t)
    out = posterior(cmp, relative=False)
    draws = np.random.default_rng(3).normal(float(cmp.lift_abs), float(cmp.se), 400_000)
    assert float(out.chance_to_win) == pytest.approx((draws > 0).mean(), abs=3e-3)
    assert float(out.risk_treatment) == pytest.approx(
        np.maximum(-draws, 0).mean(), rel=0.03, abs=1e-4
    )
    assert float(out.risk_control) == pytest.approx(np.maximum(draws, 0).mean(), rel=0.03)
    assert float(out.ci_low) == pytest.approx(np.quantile(draws, 0.025), rel=0.02, abs=1e-3)


def test_proper_prior_shrinks_towards_its_mean() -> None:
    c = SampleStats.from_values(np.random.default_rng(4).normal(10, 3, 50))
    t = SampleStats.from_values(np.random.default_rng(5).normal(12, 3, 50))
    flat = posterior(welch(c, t))
    shrunk = posterior(welch(c, t), prior=GaussianPrior(0.0, 0.01**2))
    assert abs(float(shrunk.expected)) < abs(float(flat.expected))


def test_degenerate_comparisons_keep_their_code() -> None:
    out = posterior(welch(SampleStats(5, 0, 0), SampleStats(5, 10, 30)))
    assert int(out.code) != Code.OK and np.isnan(out.chance_to_win)
