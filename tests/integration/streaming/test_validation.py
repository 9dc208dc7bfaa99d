"""Issue 14's validation acceptance: ``udf validate`` passes on a real replay and batch, and
catches a stream row that decreases, a period that does not reset after a re-ramp and a 3%
discrepancy, each with a clear report.

The clean run recomputes the last day in batch (Spark) and compares it with the shared
replay's stream rows. Each fault is injected by editing a copy of the stream rows in the
results store, then checked against the stored batch rows (``--no-recompute``). Which
experiment is in which scenario comes from the generator's manifest, not from the code
under test.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from click.testing import CliRunner

from results.schema import ResultRow
from tests.support.streaming import Replayed
from udf.cli import main
from udf.home import Home

pytestmark = [pytest.mark.flink, pytest.mark.spark, pytest.mark.slow]


def validate(home: Home, day: date, *more: str) -> tuple[int, dict]:
    result = CliRunner().invoke(
        main, ["--home", str(home.root), "validate", "--date", day.isoformat(), "--format",
               "json", *more],
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def scenarios(replayed: Replayed) -> dict[str, str]:
    return {e["experiment"]: e["scenario"] for e in replayed.prepared.manifest["experiments"]}


def stream_rows(home: Home) -> list[ResultRow]:
    from results.stores import open_store
    from udf.settings import load_settings

    with open_store(home, load_settings(home, {})) as store:
        return store.read(source="stream", metric_type="aggregated")


def write(home: Home, rows: list[ResultRow]) -> None:
    from results.stores import open_store
    from udf.settings import load_settings

    with open_store(home, load_settings(home, {})) as store:
        store.upsert(rows)


def same(row: ResultRow) -> tuple:
    return (row.experiment, row.group, row.metric, row.period_start, row.day_in, row.segment,
            row.segment_value)  # fmt: skip


def day_of_every_scenario(replayed: Replayed) -> date:
    """The latest date whose whole-group stream rows, and the day before's, cover every
    scenario (a period's rows end with it, so the last date may not)."""
    by = scenarios(replayed)
    seen: dict[str, set[str]] = {}
    for r in stream_rows(replayed.home):
        if r.segment == "":
            seen.setdefault(r.date, set()).add(by[r.experiment])
    every = set(by.values())
    days = [d for d in replayed.prepared.dates[1:]
            if seen.get(d.isoformat()) == every
            and seen.get((d - timedelta(days=1)).isoformat()) == every]  # fmt: skip
    assert days, f"no date covers every scenario: {seen}"
    return days[-1]


def checks(report: dict) -> dict[tuple[str, str], dict]:
    return {(c["rule"], c["scenario"]): c for c in report["checks"]}


def test_validation_passes_on_clean_data(replayed: Replayed) -> None:
    home = replayed.copy("validate-clean")
    day = day_of_every_scenario(replayed)
    code, report = validate(home, day)  # recomputes the day in batch first
    assert code == 0 and report["passed"], report["violations"]
    assert report["max_difference"] < 1e-12  # exact agreement (floating-point sums aside)
    by = checks(report)
    on_day = {r.experiment for r in stream_rows(home) if r.date == day.isoformat()}
    for scenario in ("single", "reramp_in", "reramp_after"):
        expected = sum(1 for e, s in scenarios(replayed).items() if s == scenario and e in on_day)
        agree = by["agrees_with_batch", scenario]
        assert agree["experiments"] == expected and agree["rows"] > 0
        assert by["never_decreases", scenario]["rows"] > 0
        assert all(by[r, scenario]["violations"] == 0 for r in
                   ("never_decreases", "resets_after_reramp", "agrees_with_batch"))  # fmt: skip
    assert by["resets_after_reramp", "single"]["rows"] == 0
    # the day after the window of a re-ramp: the rule has rows of a second period to check
    last = replayed.prepared.dates[-1]
    code, late = validate(home, last, "--no-recompute")  # the fixture's batch has every day
    assert code == 0 and checks(late)["resets_after_reramp", "reramp_after"]["rows"] > 0

    # stored, and shown by udf status
    out = CliRunner().invoke(main, ["--home", str(home.root), "status", "--validation"])
    assert out.exit_code == 0 and day.isoformat() in out.output and "passed" in out.output


@pytest.mark.parametrize("scenario", ["single", "reramp_in", "reramp_after"])
def test_validation_catches_a_stream_row_that_decreases(replayed: Replayed, scenario: str) -> None:
    home = replayed.copy(f"validate-decrease-{scenario}")
    day = day_of_every_scenario(replayed)
    before = (day - timedelta(days=1)).isoformat()
    rows = stream_rows(home)
    today = {same(r): r for r in rows if r.date == day.isoformat()}
    names = {e for e, s in scenarios(replayed).items() if s == scenario}
    victim = next(r for r in rows if r.date == before and r.experiment in names
                  and r.segment == "" and same(r) in today and today[same(r)].volume > 5)  # fmt: skip
    # (whole-group rows: a segment value's counts may go down, see streaming.validation.rules)
    # the day before now holds more than the day: the day's row went down
    write(home, [replace(victim, volume=today[same(victim)].volume + 7)])

    code, report = validate(home, day, "--no-recompute")
    assert code == 1 and not report["passed"]
    [v] = report["violations"]
    assert (v["rule"], v["scenario"], v["experiment"], v["metric"], v["field"]) == (
        "never_decreases",
        scenario,
        victim.experiment,
        victim.metric,
        "volume",
    )
    assert v["stream"] == today[same(victim)].volume and v["expected"] == v["stream"] + 7
    assert "went down" in v["message"] and victim.group in v["message"]
    assert checks(report)["agrees_with_batch", scenario]["violations"] == 0


def test_validation_catches_a_period_that_does_not_reset(replayed: Replayed) -> None:
    home = replayed.copy("validate-reset")
    rows = stream_rows(home)
    names = {e for e, s in scenarios(replayed).items() if s == "reramp_after"}
    starts: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        if r.experiment in names:
            starts.setdefault((r.experiment, r.group), set()).add(r.period_start)
    (experiment, group), periods = next((k, sorted(p)) for k, p in sorted(starts.items())
                                        if len(p) > 1)  # fmt: skip
    first, second = periods[0], periods[1]
    # the first period's final counts, carried into the second (what a missing reset does)
    ended = {}
    for r in sorted(rows, key=lambda r: r.date):
        if (r.experiment, r.group, r.period_start) == (experiment, group, first):
            ended[r.metric, r.segment, r.segment_value] = r
    carried = []
    for r in rows:
        old = ended.get((r.metric, r.segment, r.segment_value))
        if (r.experiment, r.group, r.period_start) == (experiment, group, second) and old:
            carried.append(replace(r, exposed=r.exposed + old.exposed, n=r.n + old.n,
                                   volume=r.volume + old.volume,
                                   propensity=r.propensity + old.propensity))  # fmt: skip
    assert carried, "a re-ramped group has rows in its second period"
    day = date.fromisoformat(max(r.date for r in carried))
    write(home, carried)

    code, report = validate(home, day, "--no-recompute")
    assert code == 1
    by = checks(report)
    reset = by["resets_after_reramp", "reramp_after"]
    assert reset["violations"] > 0
    assert by["never_decreases", "reramp_after"]["violations"] == 0  # still growing
    found = [v for v in report["violations"] if v["rule"] == "resets_after_reramp"]
    assert {(v["experiment"], v["group"], v["period_start"]) for v in found} == {
        (experiment, group, second)
    }
    assert all("did not start from zero" in v["message"] for v in found)
    for scenario in ("single", "reramp_in"):
        assert by["agrees_with_batch", scenario]["violations"] == 0


@pytest.mark.parametrize("scenario", ["single", "reramp_in", "reramp_after"])
def test_validation_catches_a_3_percent_discrepancy(replayed: Replayed, scenario: str) -> None:
    home = replayed.copy(f"validate-3pct-{scenario}")
    day = day_of_every_scenario(replayed)
    names = {e for e, s in scenarios(replayed).items() if s == scenario}
    rows = [r for r in stream_rows(home) if r.date == day.isoformat() and r.experiment in names
            and 0.025 < round(r.volume * 0.03) / max(r.volume, 1) < 0.035]  # fmt: skip
    victim = max(rows, key=lambda r: r.volume)
    write(home, [replace(victim, volume=victim.volume + round(victim.volume * 0.03))])  # 3% more

    code, report = validate(home, day, "--no-recompute")
    assert code == 1
    # (a row of a period after a re-ramp also exceeds counting from zero: rule 2 sees it too)
    [v] = [v for v in report["violations"] if v["rule"] == "agrees_with_batch"]
    assert checks(report)["never_decreases", scenario]["violations"] == 0
    assert (v["rule"], v["scenario"], v["experiment"], v["metric"], v["field"]) == (
        "agrees_with_batch",
        scenario,
        victim.experiment,
        victim.metric,
        "volume",
    )
    assert v["expected"] == victim.volume and 0.025 < v["difference"] < 0.035
    assert report["max_difference"] == v["difference"]  # the largest difference is reported
    assert (
        "volume" in report["max_difference_at"] and victim.experiment in report["max_difference_at"]
    )
    assert f"{v['difference']:.2%}" in v["message"] and "> 2.00%" in v["message"]
