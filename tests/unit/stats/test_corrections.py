"""Multiple-testing corrections against statsmodels' multipletests, family by family."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from stats.corrections import adjust, family_ids

METHODS = [("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "fdr_bh")]


@pytest.mark.parametrize(("ours", "theirs"), METHODS)
@pytest.mark.parametrize("seed", range(5))
def test_matches_statsmodels_within_each_family(ours: str, theirs: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 400))
    p = rng.uniform(size=size) ** rng.uniform(1, 6)
    p[rng.uniform(size=size) < 0.05] = rng.uniform()  # ties
    fam = rng.integers(0, int(rng.integers(1, 30)), size)
    adjusted = adjust(p, ours, fam)
    for f in np.unique(fam):
        expected = multipletests(p[fam == f], method=theirs)[1]
        np.testing.assert_allclose(adjusted[fam == f], expected, rtol=1e-12, atol=1e-15)


def test_nan_p_values_stay_nan_and_do_not_count() -> None:
    p = np.array([0.01, np.nan, 0.02, 0.04])
    adjusted = adjust(p, "bonferroni")
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], [0.03, 0.06, 0.12])


def test_families_from_configured_dimensions() -> None:
    keys = {
        "experiment": ["e1", "e1", "e1", "e1", "e2", "e2"],
        "group": ["b", "b", "c", "c", "b", "b"],
        "metric": ["click", "view", "click", "view", "click", "view"],
    }
    per_experiment = family_ids(keys, over=("group", "metric"))
    assert len(set(per_experiment[:4])) == 1 and per_experiment[4] != per_experiment[0]
    per_group = family_ids(keys, over=("metric",))
    assert len(set(per_group)) == 3
    assert len(set(family_ids(keys, over=("experiment", "group", "metric")))) == 1
    with pytest.raises(ValueError, match="segment"):
        family_ids(keys, over=("segment",))


def test_a_million_p_values_in_one_call() -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(size=1_000_000)
    adjusted = adjust(p, "holm", rng.integers(0, 50_000, p.size))
    assert adjusted.shape == p.shape and np.all(adjusted >= p)
