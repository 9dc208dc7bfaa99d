"""Agreement with fixed reference values computed by gbstats 0.8.0 and spotify-confidence 4.1.0.

The JSON files (and the script that made them, run outside the platform's venv) live in
tests/data/stats/; each records the versions it was computed with.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stats.bayes import posterior
from stats.cuped import cuped, pooled_theta
from stats.proportions import ztest
from stats.ratio import delta_ratio
from stats.sequential.alpha_spending import boundaries
from stats.sequential.confidence_sequence import asymptotic_cs
from stats.srm import chi_square
from stats.sufficient import CovariateStats, RatioStats, SampleStats
from stats.ttest import welch

DATA = Path(__file__).resolve().parents[2] / "data" / "stats"
GB = json.loads((DATA / "gbstats.json").read_text())
SP = json.loads((DATA / "spotify_confidence.json").read_text())
RTOL = 1e-7


def columns(refs: dict, role: str) -> dict[str, np.ndarray]:
    keys = refs["inputs"][0][role]
    return {k: np.array([case[role][k] for case in refs["inputs"]], dtype=float) for k in keys}


def groups(refs: dict, kind: str):
    out = []
    for role in ("control", "treatment"):
        g = columns(refs, role)
        if kind == "mean":
            out.append(SampleStats(g["n"], g["sum"], g["sum_sq"]))
        elif kind == "ratio":
            out.append(
                RatioStats(
                    g["n"],
                    g["num_sum"],
                    g["num_sum_sq"],
                    g["den_sum"],
                    g["den_sum_sq"],
                    g["num_den_sum"],
                )
            )
        elif kind == "cuped":
            out.append(
                CovariateStats(
                    g["n"], g["sum"], g["sum_sq"], g["pre_sum"], g["pre_sum_sq"], g["cross_sum"]
                )
            )
        else:
            out.append(SampleStats.from_counts(g["n"], g["conversions"]))
    return out


def ref(refs: dict, key: str, field: str) -> np.ndarray:
    return np.array([r[key][field] for r in refs["results"]], dtype=float)


ALPHA_GB = np.array([c["alpha"] for c in GB["inputs"]])
ALPHA_SP = np.array([c["alpha"] for c in SP["inputs"]])


def test_reference_files_record_versions() -> None:
    assert GB["versions"]["gbstats"] == "0.8.0"
    assert SP["versions"]["spotify-confidence"] == "4.1.0"


@pytest.mark.parametrize(
    ("name", "test", "kind"),
    [("welch", welch, "mean"), ("ratio", delta_ratio, "ratio"), ("cuped", cuped, "cuped")],
)
def test_frequentist_tests_match_gbstats(name, test, kind) -> None:
    control, treatment = groups(GB, kind)
    result = test(control, treatment, alpha=ALPHA_GB)
    np.testing.assert_allclose(result.lift_abs, ref(GB, f"{name}_absolute", "estimate"), rtol=RTOL)
    np.testing.assert_allclose(result.lift_rel, ref(GB, f"{name}_relative", "estimate"), rtol=RTOL)
    ci = ref(GB, f"{name}_absolute", "ci").reshape(-1, 2)
    np.testing.assert_allclose(np.c_[result.ci_low, result.ci_high], ci, rtol=RTOL)
    rel_ci = ref(GB, f"{name}_relative", "ci").reshape(-1, 2)
    np.testing.assert_allclose(np.c_[result.rel_ci_low, result.rel_ci_high], rel_ci, rtol=RTOL)
    # gbstats computes 1 - cdf, which bottoms out near 1e-16; compare above that.
    np.testing.assert_allclose(
        result.p_value, ref(GB, f"{name}_absolute", "p_value"), rtol=1e-6, atol=1e-14
    )


def test_cuped_theta_matches_gbstats() -> None:
    control, treatment = groups(GB, "cuped")
    theta = np.array([r["cuped_theta"] for r in GB["results"]])
    np.testing.assert_allclose(pooled_theta(control, treatment), theta, rtol=1e-9)


def test_asymptotic_confidence_sequence_matches_gbstats() -> None:
    control, treatment = groups(GB, "mean")
    result = asymptotic_cs(control, treatment, alpha=ALPHA_GB).comparison
    ci = ref(GB, "sequential_absolute", "ci").reshape(-1, 2)
    np.testing.assert_allclose(np.c_[result.ci_low, result.ci_high], ci, rtol=RTOL)
    rel_ci = ref(GB, "sequential_relative", "ci").reshape(-1, 2)
    np.testing.assert_allclose(np.c_[result.rel_ci_low, result.rel_ci_high], rel_ci, rtol=RTOL)
    np.testing.assert_allclose(
        result.p_value, ref(GB, "sequential_absolute", "p_value"), rtol=1e-6, atol=1e-14
    )


@pytest.mark.parametrize("relative", [True, False])
def test_bayesian_summaries_match_gbstats(relative: bool) -> None:
    control, treatment = groups(GB, "mean")
    key = "bayes_relative" if relative else "bayes_absolute"
    out = posterior(welch(control, treatment), relative=relative, alpha=ALPHA_GB)
    np.testing.assert_allclose(
        out.chance_to_win, ref(GB, key, "chance_to_win"), rtol=1e-6, atol=1e-12
    )
    np.testing.assert_allclose(out.expected, ref(GB, key, "expected"), rtol=RTOL)
    ci = ref(GB, key, "ci").reshape(-1, 2)
    np.testing.assert_allclose(np.c_[out.ci_low, out.ci_high], ci, rtol=RTOL)
    risk = ref(GB, key, "risk").reshape(-1, 2)
    np.testing.assert_allclose(
        np.c_[out.risk_control, out.risk_treatment], risk, rtol=1e-6, atol=1e-10
    )


def test_srm_matches_gbstats() -> None:
    n_c, n_t = columns(GB, "control")["n"], columns(GB, "treatment")["n"]
    result = chi_square(np.c_[n_c, n_t], [0.5, 0.5])
    np.testing.assert_allclose(
        result.p_value, [r["srm_p_value"] for r in GB["results"]], rtol=1e-9, atol=1e-300
    )


def test_welch_matches_spotify_students_t() -> None:
    control, treatment = groups(SP, "mean")
    result = welch(control, treatment, alpha=ALPHA_SP)
    ci = ref(SP, "welch", "ci").reshape(-1, 2)
    np.testing.assert_allclose(np.c_[result.ci_low, result.ci_high], ci, rtol=RTOL)
    np.testing.assert_allclose(result.p_value, ref(SP, "welch", "p_value"), rtol=1e-6, atol=1e-14)


def test_unpooled_proportion_test_matches_spotify_ztest() -> None:
    control, treatment = groups(SP, "prop")
    result = ztest(control, treatment, alpha=ALPHA_SP, pooled=False)
    np.testing.assert_allclose(result.lift_abs, ref(SP, "ztest", "estimate"), rtol=RTOL)
    ci = ref(SP, "ztest", "ci").reshape(-1, 2)
    np.testing.assert_allclose(np.c_[result.ci_low, result.ci_high], ci, rtol=RTOL)
    np.testing.assert_allclose(result.p_value, ref(SP, "ztest", "p_value"), rtol=1e-6, atol=1e-14)


@pytest.mark.parametrize(
    "case", SP["power_spending_bounds"], ids=lambda c: f"{c['fractions']}-{c['alpha']}"
)
def test_power_spending_bounds_match_spotify(case: dict) -> None:
    ours = boundaries(case["fractions"], case["alpha"], "power", rho=case["rho"])
    # spotify truncates at z=8 and integrates on a coarser grid: agree to about 1e-3.
    np.testing.assert_allclose(ours, case["bounds"], rtol=2e-3)
