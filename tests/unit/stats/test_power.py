"""Power, MDE and sample size against statsmodels' ``NormalIndPower`` and ``TTestIndPower``.

statsmodels' own ``solve_power`` for the effect size stops at about 1e-5 relative, so the
reference MDE is statsmodels' power function inverted by scipy's ``brentq`` to 1e-14; its
``solve_power`` for the sample size is exact enough to be used as it is. (statsmodels'
t power is NaN past a few thousand units per group with this scipy: t cases stay below.)
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.optimize import brentq
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from stats.power import mde, power, sample_size
from udf.cli import main

REFERENCE = {"z": NormalIndPower(), "t": TTestIndPower()}
TOL = 1e-6


def cases(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        test = str(rng.choice(["z", "t"]))
        top = 1_000_000 if test == "z" else 1_000
        yield (test, float(rng.uniform(0.05, 20)), float(rng.integers(5, top)),
               float(rng.uniform(0.2, 4)), float(rng.uniform(0.005, 0.2)),
               float(rng.uniform(0.5, 0.97)))  # fmt: skip


def reference_mde(
    test: str, n: float, ratio: float, alpha: float, target: float, guess: float
) -> float:
    ref = REFERENCE[test]
    return brentq(lambda d: ref.power(d, n, alpha, ratio=ratio) - target, 0.9 * guess, 1.1 * guess,
                  xtol=1e-15, rtol=1e-14)  # fmt: skip


@pytest.mark.parametrize("case", list(cases(11, 150)))
def test_mde_power_and_sample_size_match_statsmodels(case: tuple) -> None:
    test, sigma, n, ratio, alpha, target = case
    delta = mde(sigma, n, ratio, alpha, target, test)
    effect = reference_mde(test, n, ratio, alpha, target, delta / sigma)
    assert math.isclose(delta, effect * sigma, rel_tol=TOL)
    ref = REFERENCE[test]
    for d in (0.3 * delta, delta, 1.2 * delta):
        assert math.isclose(power(d, sigma, n, ratio, alpha, test),
                            ref.power(d / sigma, n, alpha, ratio=ratio), rel_tol=TOL, abs_tol=1e-12)  # fmt: skip
    needed = ref.solve_power(effect_size=delta / sigma, nobs1=None, alpha=alpha, power=target,
                             ratio=ratio)  # fmt: skip
    assert math.isclose(sample_size(delta, sigma, ratio, alpha, target, test), needed, rel_tol=TOL)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        mde(1.0, 100, alpha=0.05, power_=0.01)
    with pytest.raises(ValueError):
        sample_size(0.0, 1.0)


@pytest.mark.parametrize("case", list(cases(5, 12)))
def test_udf_power_matches_statsmodels(case: tuple, home) -> None:
    test, sigma, n, ratio, alpha, target = case
    share = 1 / (1 + ratio)
    allocation = f"{share * 100!r}/{(1 - share) * 100!r}"
    days = 7.0
    per_day = n / (days * share)
    common = ["power", "--sigma", repr(sigma), "--users-per-day", repr(per_day), "--allocation",
              allocation, "--alpha", repr(alpha), "--power", repr(target), "--test", test,
              "--mean", "3.0", "--format", "json"]  # fmt: skip
    out = CliRunner().invoke(main, [*common, "--days", "7"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.output)[0]
    assert math.isclose(row["n_control"], n, rel_tol=1e-12)
    ref = REFERENCE[test]
    effect = reference_mde(test, n, ratio, alpha, target, row["mde"] / sigma)
    assert math.isclose(row["mde"], effect * sigma, rel_tol=TOL)
    assert math.isclose(row["mde_rel"], effect * sigma / 3.0, rel_tol=TOL)

    out = CliRunner().invoke(main, [*common, "--effect", repr(effect * sigma)])
    assert out.exit_code == 0, out.output
    row = json.loads(out.output)[0]
    needed = ref.solve_power(effect_size=effect, nobs1=None, alpha=alpha, power=target, ratio=ratio)
    assert math.isclose(row["n_control"], needed, rel_tol=TOL)
    assert math.isclose(row["days"], needed / (per_day * share), rel_tol=TOL)


def test_udf_power_needs_one_goal(home) -> None:
    out = CliRunner().invoke(main, ["power", "--sigma", "1", "--users-per-day", "10"])
    assert out.exit_code == 1 and "exactly one of --days" in out.output
