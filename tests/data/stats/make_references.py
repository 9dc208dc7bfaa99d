"""Produce the fixed reference values the statistics tests compare against.

Run OUTSIDE the platform's virtualenv: gbstats 0.8.0 pins numpy<2 and pandas<2, and
spotify-confidence pulls in chartify and ipywidgets. Each peer gets a throw-away venv:

    python3.11 -m venv /tmp/gbenv && /tmp/gbenv/bin/pip install gbstats==0.8.0
    /tmp/gbenv/bin/python tests/data/stats/make_references.py gbstats
    python3.11 -m venv /tmp/spenv && /tmp/spenv/bin/pip install spotify-confidence==4.1.0
    /tmp/spenv/bin/python tests/data/stats/make_references.py spotify
    python3.11 -m venv /tmp/ssenv && /tmp/ssenv/bin/pip install ssrm-test==0.1.5
    /tmp/ssenv/bin/python tests/data/stats/make_references.py ssrm

Each run writes ``<peer>.json`` next to this file: the versions used, the inputs (drawn
from a fixed seed, stored so the tests never need to regenerate them) and the peer's
outputs. Only this script and the JSON are committed, never the venvs.
"""

from __future__ import annotations

import json
import platform
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CASES = 40


def _sample(rng: np.random.Generator) -> dict:
    """Random sufficient statistics of a metric with a pre-period covariate and a denominator."""
    n = int(rng.integers(20, 5000))
    mu, sd = rng.uniform(0.5, 20), rng.uniform(0.2, 10)
    pre = rng.normal(mu, sd, n)
    post = 0.7 * pre + rng.normal(rng.uniform(0.0, 5.0), sd * rng.uniform(0.3, 1.5), n)
    den = rng.poisson(rng.uniform(1, 8), n) + 1.0
    num = den * rng.uniform(0.05, 0.5) + rng.normal(0, 0.5, n)
    f = float
    return {
        "n": n,
        "sum": f(post.sum()),
        "sum_sq": f((post**2).sum()),
        "pre_sum": f(pre.sum()),
        "pre_sum_sq": f((pre**2).sum()),
        "cross_sum": f((post * pre).sum()),
        "num_sum": f(num.sum()),
        "num_sum_sq": f((num**2).sum()),
        "den_sum": f(den.sum()),
        "den_sum_sq": f((den**2).sum()),
        "num_den_sum": f((num * den).sum()),
        "conversions": int(rng.binomial(n, rng.uniform(0.02, 0.6))),
    }


def inputs() -> list[dict]:
    rng = np.random.default_rng(20261122)
    return [
        {
            "control": _sample(rng),
            "treatment": _sample(rng),
            "alpha": float(rng.choice([0.01, 0.05, 0.1])),
        }
        for _ in range(CASES)
    ]


def gbstats_refs(cases: list[dict]) -> dict:
    from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
    from gbstats.frequentist.tests import (
        FrequentistConfig,
        SequentialConfig,
        SequentialTwoSidedTTest,
        TwoSidedTTest,
    )
    from gbstats.models.statistics import (
        RatioStatistic,
        RegressionAdjustedStatistic,
        SampleMeanStatistic,
        compute_theta,
    )
    from gbstats.utils import check_srm

    def mean_stat(g, pre=False):
        if pre:
            return SampleMeanStatistic(n=g["n"], sum=g["pre_sum"], sum_squares=g["pre_sum_sq"])
        return SampleMeanStatistic(n=g["n"], sum=g["sum"], sum_squares=g["sum_sq"])

    def ratio_stat(g):
        return RatioStatistic(
            n=g["n"],
            m_statistic=SampleMeanStatistic(
                n=g["n"], sum=g["num_sum"], sum_squares=g["num_sum_sq"]
            ),
            d_statistic=SampleMeanStatistic(
                n=g["n"], sum=g["den_sum"], sum_squares=g["den_sum_sq"]
            ),
            m_d_sum_of_products=g["num_den_sum"],
        )

    def cuped_stat(g, theta):
        return RegressionAdjustedStatistic(
            n=g["n"],
            post_statistic=mean_stat(g),
            pre_statistic=mean_stat(g, pre=True),
            post_pre_sum_of_products=g["cross_sum"],
            theta=theta,
        )

    def freq(a, b, alpha, kind, test=TwoSidedTTest, **extra):
        cfg_cls = SequentialConfig if test is SequentialTwoSidedTTest else FrequentistConfig
        r = test(a, b, cfg_cls(alpha=alpha, difference_type=kind, **extra)).compute_result()
        return {"estimate": r.expected, "ci": list(map(float, r.ci)), "p_value": float(r.p_value)}

    out = []
    for case in cases:
        c, t, alpha = case["control"], case["treatment"], case["alpha"]
        row = {}
        for kind in ("absolute", "relative"):
            row[f"welch_{kind}"] = freq(mean_stat(c), mean_stat(t), alpha, kind)
            row[f"ratio_{kind}"] = freq(ratio_stat(c), ratio_stat(t), alpha, kind)
            a0, b0 = cuped_stat(c, 0.0), cuped_stat(t, 0.0)
            theta = compute_theta(a0, b0)
            row["cuped_theta"] = float(theta)
            row[f"cuped_{kind}"] = freq(cuped_stat(c, theta), cuped_stat(t, theta), alpha, kind)
            row[f"sequential_{kind}"] = freq(
                mean_stat(c),
                mean_stat(t),
                alpha,
                kind,
                test=SequentialTwoSidedTTest,
                sequential_tuning_parameter=5000,
            )
            bayes = EffectBayesianABTest(
                mean_stat(c), mean_stat(t), EffectBayesianConfig(alpha=alpha, difference_type=kind)
            ).compute_result()
            row[f"bayes_{kind}"] = {
                "chance_to_win": float(bayes.chance_to_win),
                "expected": float(bayes.expected),
                "ci": list(map(float, bayes.ci)),
                "risk": list(map(float, bayes.risk)),
            }
        row["srm_p_value"] = float(check_srm([c["n"], t["n"]], [0.5, 0.5]))
        out.append(row)
    return {"peer": "gbstats", "versions": {"gbstats": version("gbstats")}, "results": out}


def spotify_refs(cases: list[dict]) -> dict:
    import pandas as pd
    from spotify_confidence import StudentsTTest, ZTest
    from spotify_confidence.analysis.frequentist.confidence_computers.z_test_computer import (
        sequential_bounds,
    )

    warnings.simplefilter("ignore")
    out = []
    for case in cases:
        c, t, alpha = case["control"], case["treatment"], case["alpha"]
        frame = pd.DataFrame(
            {
                "group": ["control", "treatment"],
                "sum": [c["sum"], t["sum"]],
                "sum_sq": [c["sum_sq"], t["sum_sq"]],
                "conv": [float(c["conversions"]), float(t["conversions"])],
                "n": [c["n"], t["n"]],
            }
        )
        row = {}
        for name, cls, num, ss in (
            ("welch", StudentsTTest, "sum", "sum_sq"),
            ("ztest", ZTest, "conv", "conv"),
        ):
            test = cls(
                frame,
                numerator_column=num,
                numerator_sum_squares_column=ss,
                denominator_column="n",
                categorical_group_columns="group",
                interval_size=1 - alpha,
            )
            d = test.difference(level_1="control", level_2="treatment", absolute=True).iloc[0]
            row[name] = {
                "estimate": float(d["difference"]),
                "ci": [float(d["ci_lower"]), float(d["ci_upper"])],
                "p_value": float(d["p-value"]),
            }
        out.append(row)
    schedules = [[0.2, 0.4, 0.6, 0.8, 1.0], [0.1, 0.3, 0.35, 0.8, 1.0], [0.25, 0.5, 1.0]]
    bounds = [
        {
            "fractions": s,
            "alpha": a,
            "rho": 2.0,
            "bounds": sequential_bounds(np.array(s), a, 2).bounds.tolist(),
        }
        for s in schedules
        for a in (0.05, 0.01)
    ]
    return {
        "peer": "spotify-confidence",
        "versions": {
            "spotify-confidence": version("spotify-confidence"),
            "pandas": version("pandas"),
        },
        "results": out,
        "power_spending_bounds": bounds,
    }


def ssrm_refs() -> dict:
    """Optimizely's sequential SRM test (Lindon & Malek 2022) on streams of count batches.

    Each case is a stream of looks: the units that arrived since the last look, per group,
    drawn from ``true`` (the allocation ``null`` or a mismatch), and the peer's always-valid
    p-value and Bayes factor after each look, for two Dirichlet concentrations.
    """
    from ssrm_test import ssrm_test

    rng = np.random.default_rng(20261207)
    cases = []
    for i in range(24):
        groups = int(rng.integers(2, 5))
        null = rng.dirichlet(np.full(groups, 4.0))
        null = np.round(null / null.sum(), 4)
        null[-1] = round(1.0 - null[:-1].sum(), 4)
        skew = 0.0 if i % 3 == 0 else float(rng.uniform(0.02, 0.12))
        true = np.abs(null + skew * rng.normal(size=groups))
        true = true / true.sum()
        looks = int(rng.integers(5, 25))
        batches = [rng.multinomial(int(rng.integers(0, 400)), true).tolist() for _ in range(looks)]
        case: dict = {"null": null.tolist(), "true": true.tolist(), "batches": batches}
        for c in (100.0, 10000.0):
            data = np.array(batches)
            case[f"p_values_{c:g}"] = [
                float(v)
                for v in ssrm_test.sequential_p_values(data, null, dirichlet_concentration=c)
            ]
            case[f"bayes_factors_{c:g}"] = [
                float(v)
                for v in ssrm_test.sequential_bayes_factors(data, null, dirichlet_concentration=c)
            ]
        cases.append(case)
    return {"peer": "ssrm-test", "versions": {"ssrm-test": version("ssrm-test")}, "cases": cases}


FILES = {"gbstats": "gbstats.json", "spotify": "spotify_confidence.json", "ssrm": "ssrm_test.json"}


def main(peer: str) -> None:
    if peer == "ssrm":
        refs = ssrm_refs()
    else:
        cases = inputs()
        refs = gbstats_refs(cases) if peer == "gbstats" else spotify_refs(cases)
        refs["inputs"] = cases
    refs["versions"].update(
        {"python": platform.python_version(), "numpy": version("numpy"), "scipy": version("scipy")}
    )
    name = FILES[peer]
    (HERE / name).write_text(json.dumps(refs, indent=1) + "\n")
    print(f"wrote {HERE / name}")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in FILES:
        sys.exit("usage: make_references.py gbstats|spotify|ssrm")
    main(sys.argv[1])
