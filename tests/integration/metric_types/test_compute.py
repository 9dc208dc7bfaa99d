"""``udf compute`` on Spark: the contract's worked example, reruns, segments and the CLI."""

from __future__ import annotations

import json
from datetime import date

import pytest
from click.testing import CliRunner

from metric_types.compute import compute
from results.stores import open_store
from tests.conftest import CONTRACT_EXAMPLES
from udf.cli import main
from udf.home import Home
from udf.settings import load_settings

pytestmark = pytest.mark.spark

T0 = 1767225600000  # 2026-01-01 00:00 UTC
DAY = 86_400_000
# the contract §3 (X = 2): (group, metric, period) -> exposed, volume, propensity, n, sum, sum_sq
TABLE = {
    ("control", "click", T0): (1, 1, 1, 1, 1, 1),
    ("control", "search", T0): (1, 1, 1, 1, 1, 1),
    ("treatment", "click", T0): (1, 2, 1, 1, 2, 4),
    ("treatment", "search", T0): (1, 0, 0, 1, 0, 0),
    ("control", "click", T0 + 5 * DAY): (1, 0, 0, 1, 0, 0),
    ("control", "search", T0 + 5 * DAY): (1, 0, 0, 1, 0, 0),
    ("treatment", "click", T0 + 5 * DAY): (1, 1, 1, 1, 1, 1),
    ("treatment", "search", T0 + 5 * DAY): (1, 0, 0, 1, 0, 0),
}


def udf(home: Home, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home.root), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def example(home: Home) -> Home:
    for topic in ("events", "activations"):
        udf(home, "data", "import", "--topic", topic, str(CONTRACT_EXAMPLES / f"{topic}.jsonl"))
    udf(home, "ramps", "import", str(CONTRACT_EXAMPLES / "ramps.csv"))
    (home.root / "settings.yaml").write_text("spam_cap: 2\n")
    return home


def _numbers(home: Home) -> dict[tuple, tuple]:
    rows = open_store(home, load_settings(home)).read(source="batch", metric_type="aggregated")
    return {
        (r.group, r.metric, r.period_start): (
            r.exposed,
            r.volume,
            r.propensity,
            r.n,
            r.sum,
            r.sum_sq,
        )
        for r in rows
        if r.segment == ""
    }


def test_the_worked_example_through_the_command_line(example: Home) -> None:
    # Aggregated through the last day of each period: its final numbers.
    out = udf(example, "compute", "--metric-type", "aggregated", "--through", "2026-01-04",
              "--format", "json")  # fmt: skip
    assert json.loads(out)[0]["rows"] == 4
    udf(example, "compute", "--metric-type", "aggregated", "--through", "2026-01-08")
    assert _numbers(example) == TABLE


def test_many_exposures_are_joined_by_a_shuffle_with_the_same_numbers(
    example: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    import metric_types.semantics

    monkeypatch.setattr(metric_types.semantics, "BROADCAST_EXPOSURES", 0)  # never broadcast
    compute(example, "aggregated", [date(2026, 1, 4)])
    compute(example, "aggregated", [date(2026, 1, 8)])
    assert _numbers(example) == TABLE


def test_a_rerun_replaces_its_slice(example: Home) -> None:
    first = compute(example, "aggregated", [date(2026, 1, 4)])
    again = compute(example, "aggregated", [date(2026, 1, 4)])
    assert first.rows == again.rows == 4
    rows = open_store(example, load_settings(example)).read(source="batch")
    assert len(rows) == 4
    assert len({r.key() for r in rows}) == 4


def test_treatment_rows_carry_the_comparison(example: Home) -> None:
    compute(example, "aggregated", [date(2026, 1, 4)])
    rows = open_store(example, load_settings(example)).read(source="batch")
    control = [r for r in rows if r.group == "control"]
    treatment = [r for r in rows if r.group == "treatment"]
    assert all(r.lift_abs is None and r.status == "" for r in control)
    # One user per group: too few for a variance, but the lift is still reported.
    click = next(r for r in treatment if r.metric == "click")
    assert click.status == "too_few_units"
    assert click.lift_abs == pytest.approx(1.0) and click.p_value is None


def test_an_unknown_metric_is_a_clear_error(example: Home) -> None:
    result = CliRunner().invoke(
        main, ["--home", str(example.root), "compute", "--metric-type", "aggregated",
               "--through", "2026-01-04", "--metric", "nope"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no enabled aggregated metric named 'nope'" in result.output
