"""Issue 17 on Spark: health checks, winsorization, quantile metrics and the MDE in batch results.

One generated workload, with the health drills on: its only experiment is configured 50/50
but splits 45/55 (``--skew 0.1``) and sends 3% of its triggers to the other group
(``--cross-group-share 0.03``). Batch results must raise SRM and count the users in two
groups, and the winsorized and quantile metrics must equal numpy on the per-user values
that the DuckDB oracle (``tests/oracle``, independent of the platform) derives from the
raw archive files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from oracle.duckdb_metrics import DAY_MS, Catalog, Oracle, day_bounds, read_ramps_csv
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower

from udf.cli import main
from udf.config.catalog import CatalogFile
from udf.home import Home

pytestmark = pytest.mark.spark

DAY = date(2026, 1, 4)
GENERATE = (
    "--events", "100000", "--users", "20000", "--experiments", "1", "--days", "5",
    "--window-days", "3", "--skew", "0.1", "--cross-group-share", "0.03",
    "--trigger-share", "0.4", "--seed", "5",
)  # fmt: skip
REL = 1e-9


def udf(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def catalog(experiment: str, multiple_groups: str) -> dict:
    return {
        "metrics": [
            {"name": "clicks_capped", "type": "aggregated", "event_type": "click",
             "winsorize": {"percentile": 90}},
            {"name": "latency_capped", "type": "aggregated", "event_type": "latency",
             "statistic": "sum", "winsorize": {"percentile": 99}},
            {"name": "latency_p50", "type": "aggregated", "event_type": "latency",
             "statistic": "sum", "quantile": {"level": 0.5}},
            {"name": "latency_p90", "type": "aggregated", "event_type": "latency",
             "statistic": "sum", "quantile": {"level": 0.9}},
        ],
        "experiments": [
            {"experiment": experiment,
             "metrics": ["clicks_capped", "latency_capped", "latency_p50", "latency_p90"],
             "analysis": {"multiple_groups": multiple_groups}},
        ],
    }  # fmt: skip


@dataclass
class Env:
    home: Home
    root: Path
    experiment: str
    oracle: Oracle
    rows: list  # batch rows of DAY, multiple_groups: keep
    excluded: list  # the same with multiple_groups: exclude


def _compute(home: Home, root: Path, experiment: str, mode: str) -> list:
    from metric_types.compute import compute
    from results.stores import open_store
    from udf.settings import load_settings

    folder = root / f"catalog_{mode}"
    folder.mkdir()
    (folder / "c.yaml").write_text(yaml.safe_dump(catalog(experiment, mode)))
    udf("--home", str(home.root), "config", "load", str(folder))
    settings = load_settings(home)
    compute(home, "aggregated", [DAY], settings=settings)
    with open_store(home, settings) as store:
        return store.read(source="batch", date_from=DAY, date_to=DAY)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("peers")
    home = Home.resolve(root / "home").ensure()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UDF_HOME", str(home.root))
        for var in ("UDF_METADATA_URL", "UDF_SPAM_CAP", "UDF_WINDOW_DAYS", "UDF_RESULTS_URL",
                    "UDF_RESULTS_STORE"):  # fmt: skip
            mp.delenv(var, raising=False)
        out = root / "workload"
        udf("generate", "--out", str(out), *GENERATE)
        manifest = json.loads((out / "manifest.json").read_text())
        [experiment] = [e["experiment"] for e in manifest["experiments"]]
        h = ("--home", str(home.root))
        for topic in ("activations", "events"):
            udf(
                *h,
                "data",
                "import",
                "--topic",
                topic,
                *sorted(str(p) for p in (out / topic).glob("*.jsonl")),
            )
        udf(*h, "ramps", "import", str(out / "ramps.csv"))
        (home.root / "settings.yaml").write_text(yaml.safe_dump(
            {"window_days": 3, "spam_cap": 1000,
             "spark": {"conf": {"spark.sql.shuffle.partitions": "4"}}}))  # fmt: skip
        excluded = _compute(home, root, experiment, "exclude")
        rows = _compute(home, root, experiment, "keep")  # last: the store holds these
        oracle = Oracle(
            home.archive, read_ramps_csv(out / "ramps.csv"),
            Catalog.from_files([CatalogFile.model_validate(catalog(experiment, "keep"))]),
            window_ms=3 * DAY_MS, spam_cap=1000,
        )  # fmt: skip
        yield Env(home, root, experiment, oracle, rows, excluded)
        oracle.con.close()


def _overall(rows: list, metric: str) -> dict[str, object]:
    return {r.group: r for r in rows if r.metric == metric and r.segment == ""}


def _values(env: Env, metric: str) -> dict[str, np.ndarray]:
    """The oracle's per-user values of ``metric`` by group (raw, before any cap)."""
    out: dict[str, list[float]] = {}
    for group, _, x, _ in env.oracle.user_values("aggregated", DAY, metric, env.experiment):
        out.setdefault(group, []).append(x)
    return {g: np.array(v) for g, v in out.items()}


# -- health -------------------------------------------------------------------------------


def test_a_45_55_split_configured_as_50_50_raises_srm(env: Env) -> None:
    rows = _overall(env.rows, "clicks_capped")
    n_c, n_t = rows["control"].exposed, rows["treatment"].exposed
    assert 0.43 < n_c / (n_c + n_t) < 0.47
    expected = sps.chisquare([n_c, n_t], [(n_c + n_t) / 2] * 2).pvalue
    assert all(math.isclose(r.srm_p_value, expected, rel_tol=1e-9) for r in env.rows)
    assert expected < 1e-6
    assert all("srm" in r.health.split(",") for r in env.rows)


def test_users_put_in_two_groups_are_counted_and_excluded_on_request(env: Env) -> None:
    _, end = day_bounds(DAY)
    two = dict(env.oracle.sql(
        f"""
        WITH e AS (SELECT * FROM exposure WHERE t_u < {end}),
             m AS (SELECT experiment, user_id FROM e GROUP BY ALL HAVING count(DISTINCT "group") > 1)
        SELECT e."group", count(*) FROM e JOIN m USING (experiment, user_id) GROUP BY 1
        """
    ))  # fmt: skip
    assert two and min(two.values()) > 20
    kept, dropped = _overall(env.rows, "clicks_capped"), _overall(env.excluded, "clicks_capped")
    for group, count in two.items():
        assert kept[group].multiple_groups == dropped[group].multiple_groups == count
        assert dropped[group].exposed == kept[group].exposed - count
    assert all("multiple_groups" in r.health.split(",") for r in env.rows + env.excluded)


def test_udf_status_health_lists_the_period(env: Env) -> None:
    out = udf("--home", str(env.home.root), "status", "--health", "--format", "json")
    cells = json.loads(out)
    [cell] = [
        c for c in cells if c["experiment"] == env.experiment and c["date"] == DAY.isoformat()
    ]
    assert "srm" in cell["health"] and "multiple_groups" in cell["health"]
    assert cell["srm_p_value"] < 1e-6 and cell["multiple_groups"] > 0


# -- winsorization ------------------------------------------------------------------------


@pytest.mark.parametrize(("metric", "percentile"), [("clicks_capped", 90), ("latency_capped", 99)])
def test_winsorized_rows_equal_numpy_on_the_raw_values(
    env: Env, metric: str, percentile: float
) -> None:
    values = _values(env, metric)
    cap = np.percentile(np.concatenate(list(values.values())), percentile)
    rows = _overall(env.rows, metric)
    capped = {g: np.minimum(v, cap) for g, v in values.items()}
    assert any((v > cap).any() for v in values.values())  # the cap bites
    for group, v in capped.items():
        r = rows[group]
        assert math.isclose(r.cap, cap, rel_tol=1e-12)
        assert r.n == len(v)
        assert math.isclose(r.sum, v.sum(), rel_tol=REL)
        assert math.isclose(r.sum_sq, (v * v).sum(), rel_tol=REL)
    welch = sps.ttest_ind(capped["treatment"], capped["control"], equal_var=False)
    assert math.isclose(rows["treatment"].p_value, welch.pvalue, rel_tol=1e-7)
    # the MDE at the current sample sizes: statsmodels' power at it is the analysis' 0.8
    t, c = capped["treatment"], capped["control"]
    se = math.sqrt(t.var(ddof=1) / len(t) + c.var(ddof=1) / len(c))
    sigma = se / math.sqrt(1 / len(c) + 1 / len(t))
    power = NormalIndPower().power(
        rows["treatment"].mde / sigma, len(c), 0.05, ratio=len(t) / len(c)
    )
    assert math.isclose(power, 0.8, rel_tol=1e-7)
    assert math.isclose(rows["treatment"].mde_rel, rows["treatment"].mde / c.mean(), rel_tol=1e-9)


def test_udf_power_reads_sigma_and_traffic_from_the_results(env: Env) -> None:
    values = _values(env, "latency_capped")
    rows = _overall(env.rows, "latency_capped")
    cap = rows["control"].cap
    out = udf("--home", str(env.home.root), "power", "--experiment", env.experiment, "--metric",
              "latency_capped", "--days", "14", "--format", "json")  # fmt: skip
    [got] = json.loads(out)
    control = np.minimum(values["control"], cap)
    assert math.isclose(got["sigma"], control.std(ddof=1), rel_tol=1e-9)
    assert math.isclose(got["control_mean"], control.mean(), rel_tol=1e-9)
    exposed = rows["control"].exposed + rows["treatment"].exposed
    assert math.isclose(got["users_per_day"], exposed / rows["control"].look, rel_tol=1e-12)
    assert math.isclose(got["control_share"], rows["control"].exposed / exposed, rel_tol=1e-12)


# -- quantiles ----------------------------------------------------------------------------


@pytest.mark.parametrize(("metric", "level"), [("latency_p50", 0.5), ("latency_p90", 0.9)])
def test_quantile_rows_equal_numpy_on_the_raw_values(env: Env, metric: str, level: float) -> None:
    values = _values(env, metric)
    rows = _overall(env.rows, metric)
    z = sps.norm.ppf(0.975)
    se = {}
    for group, v in values.items():
        half = z * math.sqrt(level * (1 - level) / len(v))
        low, q, high = np.percentile(v, [100 * (level - half), 100 * level, 100 * (level + half)])
        r = rows[group]
        assert math.isclose(r.quantile, q, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(r.quantile_low, low, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(r.quantile_high, high, rel_tol=1e-12, abs_tol=1e-12)
        se[group] = (high - low) / (2 * z)
    qc, qt = (
        np.percentile(values["control"], 100 * level),
        np.percentile(values["treatment"], 100 * level),
    )
    t = rows["treatment"]
    assert math.isclose(t.lift_abs, qt - qc, rel_tol=1e-9, abs_tol=1e-12)
    half = z * math.hypot(se["control"], se["treatment"])
    if half > 0:
        assert math.isclose(t.ci_low, qt - qc - half, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(t.p_value, 2 * sps.norm.sf(abs(qt - qc) / (half / z)), rel_tol=1e-9)
    if qc != 0:
        assert math.isclose(t.lift_rel, qt / qc - 1, rel_tol=1e-9)
    if level == 0.9:  # the p90 of a per-user latency is positive, its interval wide
        assert t.status == "" and t.p_value is not None and t.ci_low < t.ci_high
