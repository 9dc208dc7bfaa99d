"""Issue 4's acceptance: the batch (Spark) rows equal an independent DuckDB computation.

One generated workload with every kind of dirt (duplicate copies, spammers bursting over a
small spam cap, late and out-of-order records, 1% corrupt lines, segments, all three ramp
scenarios) is imported through the command line, a catalog covering each metric type and
kind (count, sum, ratio, custom SQL, segments, corrections, CUPED with two pre-exposure
windows, a conversion window in each metric type) is loaded with ``udf config load``, and for each metric type and three dates
``metric_types.compute.compute`` must write exactly the rows ``tests/oracle/duckdb_metrics.py``
derives from the raw archive files: the same keys, equal integers (the look included), sums
equal to 1e-9 relative (the CUPED covariate's too), equal status and, where the comparison
is not degenerate, statistics equal to 1e-9 (absolute or relative), CUPED's included.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from oracle.compare import differences, report
from oracle.duckdb_metrics import (
    DAY_MS,
    Catalog,
    Oracle,
    day_bounds,
    read_ramps_csv,
)

from udf.cli import main
from udf.config.catalog import CatalogFile
from udf.home import Home

pytestmark = pytest.mark.spark

SPAM_CAP = 20
WINDOW_DAYS = 3
# Jan 4: inside every re-ramped period; Jan 5: the reramp_after boundaries (a period ends
# and the next one opens that day); Jan 7: second periods, late in the data.
DATES = (date(2026, 1, 4), date(2026, 1, 5), date(2026, 1, 7))
METRIC_TYPES = ("aggregated", "calendar_day", "days_in", "custom")
GENERATE = (
    "--events", "150000", "--users", "6000", "--experiments", "8", "--days", "8",
    "--corrupt-share", "0.01", "--duplicate-share", "0.02", "--late-share", "0.03",
    "--spammers", "4", "--spam-cap", str(SPAM_CAP), "--window-days", str(WINDOW_DAYS),
    "--seed", "7",
)  # fmt: skip

# Spark SQL (the guard's dialect: `group` is quoted with backticks); the oracle transpiles
# it to DuckDB with sqlglot.
CUSTOM_SQL = (
    "SELECT experiment, `group`, period_start, user_id, COUNT(DISTINCT event_type) AS value "
    "FROM counted_events GROUP BY 1, 2, 3, 4"
)
# Uses the exposures view and returns zeros (volume counts only non-zero values).
CUSTOM_SQL_FIRST_HOUR = """
WITH first_hour AS (
  SELECT e.experiment AS experiment, e.`group` AS `group`, e.period_start AS period_start,
         e.user_id AS user_id, COUNT(c.ts) AS events
  FROM exposures e
  LEFT JOIN counted_events c
    ON c.experiment = e.experiment AND c.`group` = e.`group`
   AND c.period_start = e.period_start AND c.user_id = e.user_id
   AND c.ts < e.exposure_ts + 3600000
  GROUP BY e.experiment, e.`group`, e.period_start, e.user_id
)
SELECT experiment, `group`, period_start, user_id, events * 1.5 AS value FROM first_hour
"""


def udf(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def catalog_yaml(manifest: dict) -> dict:
    """Metrics of every type and kind, selected by one experiment of each scenario."""
    by_scenario: dict[str, list[dict]] = {}
    for e in manifest["experiments"]:
        by_scenario.setdefault(e["scenario"], []).append(e)
    after = by_scenario["reramp_after"]
    # the reramp_after with the most groups (two treatments), and the one at the exact boundary
    after_wide = max(after, key=lambda e: len(e["groups"]))["experiment"]
    after_exact = after[0]["experiment"]
    reramp_in = by_scenario["reramp_in"][0]["experiment"]
    single = by_scenario["single"][0]["experiment"]
    everything = [
        "clicks_by_country", "latency_total", "ctr", "latency_per_impression", "clicks_daily",
        "latency_daily", "searches_days_in", "ctr_days_in", "event_kinds", "first_hour_events",
        "clicks_30h", "ctr_12h", "latency_daily_36h", "searches_days_in_40h", "event_kinds_6h",
    ]  # fmt: skip
    experiments = [
        {"experiment": after_wide, "metrics": everything, "segments": ["platform"],
         "analysis": {"correction": "holm"}},
        {"experiment": reramp_in, "metrics": everything,
         "analysis": {"correction": "bh", "correct_over": ["metric", "group", "segment"],
                      "alpha": 0.1, "cuped": {"pre_days": 2}}},
        {"experiment": single, "metrics": ["latency_total", "ctr_days_in", "event_kinds"],
         "analysis": {"cuped": {"pre_days": 1}}},
    ]  # fmt: skip
    if after_exact != after_wide:
        experiments.append(
            {"experiment": after_exact, "metrics": ["clicks_by_country", "ctr", "clicks_daily",
                                                    "searches_days_in"],
             "analysis": {"correction": "bonferroni"}}
        )  # fmt: skip
    return {
        "segments": [
            {"name": "country", "field": "country"},
            {"name": "platform", "field": "platform"},
        ],
        "metrics": [
            {"name": "clicks_by_country", "type": "aggregated", "event_type": "click",
             "segments": ["country"]},
            {"name": "latency_total", "type": "aggregated", "event_type": "latency",
             "statistic": "sum"},
            {"name": "ctr", "type": "aggregated",
             "ratio": {"numerator": {"event_type": "click"},
                       "denominator": {"event_type": "impression"}}},
            {"name": "latency_per_impression", "type": "aggregated",
             "ratio": {"numerator": {"event_type": "latency", "statistic": "sum"},
                       "denominator": {"event_type": "impression"}}},
            {"name": "clicks_daily", "type": "calendar_day", "event_type": "click",
             "segments": ["country"]},
            {"name": "latency_daily", "type": "calendar_day", "event_type": "latency",
             "statistic": "sum"},
            {"name": "searches_days_in", "type": "days_in", "event_type": "search",
             "days": [1, 2, 3]},
            {"name": "ctr_days_in", "type": "days_in", "days": [1, 4],
             "ratio": {"numerator": {"event_type": "click"},
                       "denominator": {"event_type": "impression"}}},
            {"name": "event_kinds", "type": "custom", "sql": CUSTOM_SQL},
            {"name": "first_hour_events", "type": "custom", "sql": CUSTOM_SQL_FIRST_HOUR,
             "segments": ["country"]},
            # conversion windows, one per metric type (ratio and segments included)
            {"name": "clicks_30h", "type": "aggregated", "event_type": "click",
             "window_hours": 30, "segments": ["country"]},
            {"name": "ctr_12h", "type": "aggregated", "window_hours": 12.5,
             "ratio": {"numerator": {"event_type": "click"},
                       "denominator": {"event_type": "impression"}}},
            {"name": "latency_daily_36h", "type": "calendar_day", "event_type": "latency",
             "statistic": "sum", "window_hours": 36},
            {"name": "searches_days_in_40h", "type": "days_in", "event_type": "search",
             "days": [1, 2, 3], "window_hours": 40},
            {"name": "event_kinds_6h", "type": "custom", "sql": CUSTOM_SQL, "window_hours": 6},
        ],
        "experiments": experiments,
    }  # fmt: skip


@dataclass
class Env:
    home: Home
    workload: Path
    manifest: dict
    ramps: dict
    oracle: Oracle
    catalog: dict
    batch: dict[str, list] = field(default_factory=dict)  # metric type -> ResultRows
    expected: dict[tuple[str, date], list[dict]] = field(default_factory=dict)

    def oracle_rows(self, metric_type: str, day: date) -> list[dict]:
        """The oracle's rows of one slice, computed once per module (a copy each time)."""
        if (metric_type, day) not in self.expected:
            self.expected[(metric_type, day)] = self.oracle.rows(metric_type, day)
        return copy.deepcopy(self.expected[(metric_type, day)])

    def batch_rows(self, metric_type: str) -> list:
        """Run ``compute`` once per metric type for all ``DATES``; the stored batch rows."""
        if metric_type not in self.batch:
            from metric_types.compute import compute
            from results.stores import open_store
            from udf.settings import load_settings

            settings = load_settings(self.home)
            assert (settings.spam_cap, settings.window_days) == (SPAM_CAP, WINDOW_DAYS)
            compute(self.home, metric_type, list(DATES), settings=settings)
            with open_store(self.home, settings) as store:
                self.batch[metric_type] = store.read(
                    source="batch", metric_type=metric_type, date_from=min(DATES),
                    date_to=max(DATES),
                )  # fmt: skip
        return self.batch[metric_type]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("oracle")
    home = Home.resolve(root / "home").ensure()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UDF_HOME", str(home.root))
        for var in ("UDF_METADATA_URL", "UDF_SPAM_CAP", "UDF_WINDOW_DAYS", "UDF_RESULTS_URL",
                    "UDF_RESULTS_STORE"):  # fmt: skip
            mp.delenv(var, raising=False)
        out = root / "workload"
        udf("generate", "--out", str(out), *GENERATE)
        manifest = json.loads((out / "manifest.json").read_text())
        h = ("--home", str(home.root))
        for topic in ("activations", "events"):
            files = sorted(str(p) for p in (out / topic).glob("*.jsonl"))
            udf(*h, "data", "import", "--topic", topic, *files)
        udf(*h, "ramps", "import", str(out / "ramps.csv"))
        (home.root / "settings.yaml").write_text(
            yaml.safe_dump(
                {
                    "window_days": WINDOW_DAYS,
                    "spam_cap": SPAM_CAP,
                    "spark": {"conf": {"spark.sql.shuffle.partitions": "4"}},
                }
            )
        )
        catalog = catalog_yaml(manifest)
        (root / "catalog").mkdir()
        (root / "catalog" / "oracle.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
        udf(*h, "config", "load", str(root / "catalog"))
        ramps = read_ramps_csv(out / "ramps.csv")
        oracle = Oracle(
            home.archive, ramps, Catalog.from_files([CatalogFile.model_validate(catalog)]),
            window_ms=WINDOW_DAYS * DAY_MS, spam_cap=SPAM_CAP,
        )  # fmt: skip
        yield Env(home, out, manifest, ramps, oracle, catalog)
        oracle.con.close()


# ---------------------------------------------------------------------------- the workload


def test_the_workload_exercises_every_edge_case(env: Env) -> None:
    m, oracle = env.manifest, env.oracle
    events, activations = m["topics"]["events"], m["topics"]["activations"]
    assert events["duplicate_copies"] > 0 and activations["duplicate_copies"] > 0
    assert events["corrupt"] > 0 and activations["corrupt"] > 0
    assert events["late"] > 0 and events["with_segments"] > 0
    assert {e["scenario"] for e in m["experiments"]} == {"single", "reramp_in", "reramp_after"}
    assert m["spam"]["cap"] == SPAM_CAP and m["spam"]["events_over_cap"] > 0

    counts = oracle.counts()
    assert oracle.invalid_lines == {"events": 0, "activations": 0}  # corrupt lines never archived
    assert counts["events"] == events["valid"]
    assert counts["deduped"] == events["unique"]  # the oracle's de-duplication
    assert counts["deduped"] - counts["clean"] == m["spam"]["events_over_cap"]  # its spam cap

    # the oracle's periods are the generator's (two independent derivations)
    for e in m["experiments"]:
        for g in e["groups"]:
            assert oracle.periods[(e["experiment"], g)] == [
                (p["start"], p["end"]) for p in e["periods"]
            ]

    # the dates hit what they are meant to: a re-ramped period, a period boundary
    def active(day: date) -> set[tuple[str, int]]:
        ds, de = day_bounds(day)
        return {(e["experiment"], p["start"]) for e in m["experiments"] for p in e["periods"]
                if p["start"] < de and p["end"] > ds}  # fmt: skip

    reramped = {(e["experiment"], e["periods"][0]["start"]) for e in m["experiments"]
                if e["scenario"] == "reramp_in"}  # fmt: skip
    assert reramped & active(DATES[0])
    boundary = [e for e in m["experiments"] if e["scenario"] == "reramp_after"
                and day_bounds(DATES[1])[0] <= e["periods"][1]["start"] < day_bounds(DATES[1])[1]]  # fmt: skip
    assert boundary
    # someone is exposed in a second period (counts restart from zero there)
    second = [(e["experiment"], e["periods"][1]["start"]) for e in m["experiments"]
              if len(e["periods"]) > 1]  # fmt: skip
    exposed = set(oracle.sql("SELECT DISTINCT experiment, period_start FROM exposure"))
    assert exposed & set(second)


@pytest.mark.parametrize("metric_type", METRIC_TYPES)
def test_oracle_segment_rows_add_up(env: Env, metric_type: str) -> None:
    """The oracle's own consistency: each segment's rows add up to the group's overall row."""
    rows = env.oracle_rows(metric_type, DATES[1])
    assert rows
    overall = {(r["experiment"], r["group"], r["metric"], r["period_start"], r["day_in"]): r
               for r in rows if r["segment"] == ""}  # fmt: skip
    totals: dict[tuple, list[float]] = {}
    for r in rows:
        if r["segment"]:
            k = (
                r["experiment"],
                r["group"],
                r["metric"],
                r["period_start"],
                r["day_in"],
                r["segment"],
            )
            t = totals.setdefault(k, [0, 0, 0, 0.0])
            for i, f in enumerate(("n", "volume", "propensity", "sum")):
                t[i] += r[f]
    assert totals or metric_type == "days_in"
    for k, (n, vol, prop, s) in totals.items():
        o = overall[k[:5]]
        assert (n, vol, prop) == (o["n"], o["volume"], o["propensity"]), k
        assert math.isclose(s, o["sum"], rel_tol=1e-12, abs_tol=1e-9), k


# ---------------------------------------------------------------------------- batch vs oracle


@pytest.mark.parametrize("day", DATES, ids=[d.isoformat() for d in DATES])
@pytest.mark.parametrize("metric_type", METRIC_TYPES)
def test_batch_rows_equal_the_oracle(env: Env, metric_type: str, day: date) -> None:
    expected = env.oracle_rows(metric_type, day)
    assert expected, "the oracle expects rows for every type and date of this workload"
    actual = [r for r in env.batch_rows(metric_type) if r.date == day.isoformat()]
    problems = differences(expected, actual)
    assert not problems, report(problems)


@pytest.mark.parametrize("metric_type", ("aggregated", "calendar_day", "days_in"))
def test_cuped_is_exercised(env: Env, metric_type: str) -> None:
    """The comparisons above cover CUPED for real: covariates that are not all zero, and
    adjusted comparisons, in both experiments that ask for it (two windows), at every look."""
    rows = [r for d in DATES for r in env.oracle_rows(metric_type, d)]
    cuped = [r for r in rows if r["pre_sum"] is not None]
    asked = {
        e["experiment"] for e in env.catalog["experiments"] if "cuped" in e.get("analysis", {})
    }
    # the single-ramp experiment has CUPED on its aggregated count and sum metrics only
    assert {r["experiment"] for r in cuped} == (asked if metric_type == "aggregated" else
                                                  {env.catalog["experiments"][1]["experiment"]})  # fmt: skip
    assert any(r["pre_sum"] > 0 and r["cuped_p_value"] is not None and r["status"] == ""
               for r in cuped)  # fmt: skip
    assert len({r["look"] for r in rows}) >= 3


def test_batch_rows_are_batch_rows(env: Env) -> None:
    rows = env.batch_rows("aggregated")
    assert rows and {(r.source, r.metric_type) for r in rows} == {("batch", "aggregated")}
    assert {r.date for r in rows} == {d.isoformat() for d in DATES}


def test_conversion_windows_are_exercised(env: Env) -> None:
    """The windowed metrics above differ from their unwindowed twins where they should: the
    same users, fewer counted events; nothing on day 3 of a 40-hour window."""

    def by_key(metric_type: str, day: date, metric: str) -> dict[tuple, dict]:
        return {(r["experiment"], r["group"], r["period_start"], r["day_in"], r["segment"],
                 r["segment_value"]): r
                for r in env.oracle_rows(metric_type, day) if r["metric"] == metric}  # fmt: skip

    windowed, full = (
        by_key("aggregated", DATES[2], "clicks_30h"),
        by_key("aggregated", DATES[2], "clicks_by_country"),
    )
    assert windowed.keys() <= full.keys() and len(windowed) > 10
    assert all(
        w["n"] == full[k]["n"] and w["volume"] <= full[k]["volume"] for k, w in windowed.items()
    )
    assert any(w["volume"] < full[k]["volume"] for k, w in windowed.items())
    windowed = by_key("days_in", DATES[2], "searches_days_in_40h")
    full = by_key("days_in", DATES[2], "searches_days_in")
    # only experiments that select both twins can be compared key for key
    both = {e["experiment"] for e in env.catalog["experiments"]
            if {"searches_days_in", "searches_days_in_40h"} <= set(e["metrics"])}  # fmt: skip
    full = {k: r for k, r in full.items() if k[0] in both}
    assert windowed.keys() == full.keys() and windowed
    for k, w in windowed.items():
        day_in = k[3]
        assert w["n"] == full[k]["n"]
        assert (
            (w["volume"] == full[k]["volume"])
            if day_in == 1
            else (w["volume"] <= full[k]["volume"])
        )
        if day_in == 3:
            assert w["volume"] == 0
    assert any(w["volume"] < full[k]["volume"] for k, w in windowed.items() if k[3] == 2)
