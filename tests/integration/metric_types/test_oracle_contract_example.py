"""The test oracle itself reproduces the contract §3's worked example (no Spark).

The example's files are imported into a fresh home through ``udf data import``; the
oracle then reads the archive the importer wrote, so a wrong line order, de-duplication,
spam cap, period or exposure rule in the oracle shows up here against hand-derived numbers.
"""

from __future__ import annotations

from datetime import date

import pytest
from click.testing import CliRunner
from oracle.duckdb_metrics import DAY_MS, Oracle, derive_periods, read_ramps_csv

from tests.conftest import CONTRACT_EXAMPLES
from udf.cli import main
from udf.home import Home

T0 = 1767225600000  # 2026-01-01 00:00 UTC
P1, P2 = T0, T0 + 5 * DAY_MS
X, W = 2, 3 * DAY_MS

# the contract §3: group, metric, period -> exposed, volume, propensity, n, sum, sum_sq
TABLE = {
    ("control", "click", P1): (1, 1, 1, 1, 1, 1),
    ("control", "search", P1): (1, 1, 1, 1, 1, 1),
    ("treatment", "click", P1): (1, 2, 1, 1, 2, 4),
    ("treatment", "search", P1): (1, 0, 0, 1, 0, 0),
    ("control", "click", P2): (1, 0, 0, 1, 0, 0),
    ("control", "search", P2): (1, 0, 0, 1, 0, 0),
    ("treatment", "click", P2): (1, 1, 1, 1, 1, 1),
    ("treatment", "search", P2): (1, 0, 0, 1, 0, 0),
}


def udf(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def oracle(home: Home) -> Oracle:
    for topic in ("events", "activations"):
        udf("--home", str(home.root), "data", "import", "--topic", topic,
            str(CONTRACT_EXAMPLES / f"{topic}.jsonl"))  # fmt: skip
    ramps = read_ramps_csv(CONTRACT_EXAMPLES / "ramps.csv")
    return Oracle(home.archive, ramps, None, window_ms=W, spam_cap=X)


def test_periods_of_the_example() -> None:
    ramps = read_ramps_csv(CONTRACT_EXAMPLES / "ramps.csv")
    for group in ("control", "treatment"):
        assert derive_periods(ramps[("exp", group)], W) == [
            (P1, T0 + 4 * DAY_MS),
            (P2, T0 + 8 * DAY_MS),
        ]


@pytest.mark.parametrize(
    ("day", "period"),
    [(date(2026, 1, 4), P1), (date(2026, 1, 8), P2), (date(2026, 1, 2), P1)],
    ids=["T0+3d", "T0+7d", "T0+1d"],
)
def test_worked_example_table(oracle: Oracle, day: date, period: int) -> None:
    rows = oracle.rows("aggregated", day)
    got = {
        (r["group"], r["metric"], r["period_start"]): (
            r["exposed"],
            r["volume"],
            r["propensity"],
            r["n"],
            r["sum"],
            r["sum_sq"],
        )
        for r in rows
    }
    assert len(got) == len(rows)  # one row per key: no segments here
    expected = {k: v for k, v in TABLE.items() if k[2] == period}
    assert got == expected
    for r in rows:
        assert (r["experiment"], r["metric_type"], r["date"], r["day_in"]) == (
            "exp",
            "aggregated",
            day.isoformat(),
            0,
        )
        assert (r["segment"], r["segment_value"]) == ("", "")
        assert r["period_end"] == period + (4 if period == P1 else 3) * DAY_MS
        # one user per group: never enough units for a comparison
        assert r["status"] == ("" if r["group"] == "control" else "too_few_units")
        assert r["p_value"] is None and r["lift_abs"] is None


def test_between_the_periods_nothing_is_active(oracle: Oracle) -> None:
    # T0+4d .. T0+5d: the first period ended, the second has not started
    assert oracle.rows("aggregated", date(2026, 1, 5)) == []


def test_example_cleaning_counts(oracle: Oracle) -> None:
    counts = oracle.counts()
    assert oracle.invalid_lines == {"events": 0, "activations": 0}
    # 10 lines, one duplicate; user 2's third click of the hour is over the cap of 2
    assert (counts["events"], counts["deduped"], counts["clean"]) == (10, 9, 8)
    # user 1 in both periods, user 2 in the first, user 4 in the second; user 3 never
    assert counts["exposures"] == 4
