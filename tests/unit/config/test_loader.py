"""Config errors name the file and field, all at once, and never hide the good files."""

from __future__ import annotations

from pathlib import Path

import pytest

from udf.config.catalog import AggregatedMetric, DaysInMetric
from udf.config.loader import load_catalog
from udf.errors import ConfigError


def metric_file(i: int) -> str:
    return f"""
metrics:
  - name: metric_{i}
    type: aggregated
    event_type: event_{i}
    owners: [owner{i}@example.com]
"""


@pytest.fixture
def ten_files(tmp_path: Path) -> Path:
    root = tmp_path / "catalog"
    root.mkdir()
    for i in range(10):
        (root / f"m{i:02d}.yaml").write_text(metric_file(i))
    return root


def test_one_broken_file_of_ten(ten_files: Path) -> None:
    broken = ten_files / "m07.yaml"
    broken.write_text(
        metric_file(7).replace("event_type: event_7", "event_type: event_7\n    colour: red")
    )

    loaded = load_catalog([ten_files])

    assert len(loaded.files) == 9
    assert str(broken) not in loaded.files
    assert sorted(m.name for c in loaded.files.values() for m in c.metrics) == [
        f"metric_{i}" for i in range(10) if i != 7
    ]
    [issue] = loaded.issues
    assert issue.file == str(broken)
    assert issue.field == "metrics[0] (metric_7).colour"
    assert issue.message == "unknown key"
    with pytest.raises(
        ConfigError, match=r"m07.yaml: metrics\[0\] \(metric_7\).colour: unknown key"
    ):
        loaded.raise_for_issues()


def test_every_error_of_every_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("""
metrics:
  - name: clicks
    type: aggregated
    event_type: click
    owners: [not-an-email]
  - name: d
    type: days_in
    event_type: click
    days: [0]
  - name: c
    type: custom
  - name: x
    type: hourly
""")
    (tmp_path / "b.yaml").write_text("metrics:\n  - name: ok\n    type: aggregated\n  bad: [\n")
    (tmp_path / "c.yaml").write_text("- just\n- a list\n")
    (tmp_path / "d.yaml").write_text("segments:\n  - name: s\n    field: f\n    field: g\n")

    loaded = load_catalog([tmp_path])

    found = {(Path(i.file).name, i.field) for i in loaded.issues}
    assert found == {
        ("a.yaml", "metrics[0] (clicks).owners[0]"),
        ("a.yaml", "metrics[1] (d).days[0]"),
        ("a.yaml", "metrics[2] (c)"),
        ("a.yaml", "metrics[3] (x)"),
        ("b.yaml", ""),
        ("c.yaml", ""),
        ("d.yaml", ""),
    }
    messages = {Path(i.file).name + ":" + i.field: i.message for i in loaded.issues}
    assert "not an email" in messages["a.yaml:metrics[0] (clicks).owners[0]"]
    assert "exactly one of 'sql' or 'function'" in messages["a.yaml:metrics[2] (c)"]
    assert "'aggregated'" in messages["a.yaml:metrics[3] (x)"]
    assert "line 4" in messages["b.yaml:"]
    assert "must be a mapping" in messages["c.yaml:"]
    assert "duplicate key 'field'" in messages["d.yaml:"]
    assert loaded.files == {}


def test_types_select_their_model_and_params(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("""
segments:
  - name: country
    field: country
metrics:
  - name: clicks
    type: aggregated
    event_type: click
    segments: [country]
  - name: clicks_by_day
    type: days_in
    ratio:
      numerator: {event_type: click}
      denominator: {event_type: impression}
    days: [1, 7]
experiments:
  - experiment: exp_1
    metrics: [clicks, clicks_by_day]
    segments: [country]
""")
    loaded = load_catalog([tmp_path])
    assert loaded.ok, loaded.issues
    catalog = loaded.files[str(tmp_path / "a.yaml")]
    clicks, by_day = catalog.metrics
    assert isinstance(clicks, AggregatedMetric) and isinstance(by_day, DaysInMetric)
    assert by_day.params() == {
        "statistic": "count",
        "ratio": {
            "numerator": {"event_type": "click", "statistic": "count"},
            "denominator": {"event_type": "impression", "statistic": "count"},
        },
        "days": [1, 7],
    }
    assert clicks.sla_hours == 30.0 and clicks.sources == ["events", "activations"]


def test_cross_file_duplicates_and_unknown_references(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(metric_file(1))
    (tmp_path / "b.yaml").write_text(metric_file(1))  # the same metric name again
    (tmp_path / "c.yaml").write_text(
        "experiments:\n  - experiment: e\n    metrics: [metric_1, nope]\n"
    )
    loaded = load_catalog([tmp_path])
    assert list(loaded.files) == [str(tmp_path / "a.yaml")]
    by_file = {Path(i.file).name: i for i in loaded.issues}
    assert "already defined in" in by_file["b.yaml"].message
    assert by_file["c.yaml"].field == "experiments[0] (e).metrics[1]"
    assert by_file["c.yaml"].message == "unknown metric 'nope'"


def test_strict_types_are_not_coerced(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "metrics:\n  - name: m\n    type: aggregated\n    event_type: click\n    sla_hours: '30'\n"
    )
    [issue] = load_catalog([tmp_path]).issues
    assert issue.field == "metrics[0] (m).sla_hours"


def test_experiment_analysis_spec(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(metric_file(1))
    (tmp_path / "a.yaml").write_text("""
experiments:
  - experiment: 0a1b2c            # experiment hashes may start with a digit
    metrics: [metric_1]
    analysis:
      alpha: 0.01
      correction: holm
      correct_over: [metric, segment]
      sequential: pocock
      looks: 4
  - experiment: e2
    metrics: [metric_1]
    analysis: {sequential: obrien_fleming}
  - experiment: e3
    metrics: [metric_1]
    analysis: {correction: fdr}
""")
    loaded = load_catalog([tmp_path])
    found = {(Path(i.file).name, i.field): i.message for i in loaded.issues}
    assert "needs 'looks'" in found[("a.yaml", "experiments[1] (e2).analysis")]
    assert "'bh'" in found[("a.yaml", "experiments[2] (e3).analysis.correction")]

    (tmp_path / "a.yaml").write_text(
        (tmp_path / "a.yaml").read_text().split("  - experiment: e2")[0]
    )
    (tmp_path / "b.yaml").write_text(
        "experiments:\n  - experiment: 0a1b2c\n    metrics: [metric_1]\n"
    )
    [issue] = load_catalog([tmp_path]).issues
    assert (Path(issue.file).name, issue.field) == ("b.yaml", "experiments[0] (0a1b2c).experiment")
    assert "already selected in" in issue.message

    (tmp_path / "b.yaml").unlink()
    loaded = load_catalog([tmp_path])
    assert loaded.ok, loaded.issues
    [selection] = loaded.files[str(tmp_path / "a.yaml")].experiments
    assert selection.analysis.correction == "holm" and selection.analysis.looks == 4


def test_cuped_and_gamblers_ruin_settings(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(metric_file(1))
    (tmp_path / "a.yaml").write_text("""
experiments:
  - experiment: ok
    metrics: [metric_1]
    analysis: {sequential: gamblers_ruin, total_conversions: 2000, cuped: {pre_days: 7}}
  - experiment: no_total
    metrics: [metric_1]
    analysis: {sequential: gamblers_ruin}
  - experiment: stray_total
    metrics: [metric_1]
    analysis: {sequential: msprt, total_conversions: 10}
  - experiment: bad_cuped
    metrics: [metric_1]
    analysis: {cuped: {pre_days: 0, window: 3}}
""")
    found = {i.field: i.message for i in load_catalog([tmp_path]).issues}
    assert "needs 'total_conversions'" in found["experiments[1] (no_total).analysis"]
    assert "applies only to gamblers_ruin" in found["experiments[2] (stray_total).analysis"]
    assert "greater than 0" in found["experiments[3] (bad_cuped).analysis.cuped.pre_days"]
    assert found["experiments[3] (bad_cuped).analysis.cuped.window"] == "unknown key"
    assert not any(f.startswith("experiments[0]") for f in found)


def test_rejecting_a_file_rejects_what_depends_on_it_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "metrics:\n  - name: m1\n    type: aggregated\n    event_type: click\n    segments: [nope]\n"
    )
    (tmp_path / "b.yaml").write_text("experiments:\n  - experiment: e\n    metrics: [m1]\n")
    (tmp_path / "c.yaml").write_text(metric_file(3))

    loaded = load_catalog([tmp_path])

    assert list(loaded.files) == [str(tmp_path / "c.yaml")]
    messages = {Path(i.file).name: i.message for i in loaded.issues}
    assert messages["a.yaml"] == "unknown segment 'nope'"
    assert (
        messages["b.yaml"] == f"metric 'm1' is defined in {tmp_path / 'a.yaml'}, which has errors"
    )


def test_an_impossible_date_is_an_issue_of_its_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("metrics:\n  - name: x\n    description: 2026-13-01\n")
    (tmp_path / "good.yaml").write_text("segments:\n  - name: country\n    field: country\n")
    loaded = load_catalog([tmp_path])
    assert list(loaded.files) == [str(tmp_path / "good.yaml")]
    [issue] = loaded.issues
    assert issue.file.endswith("bad.yaml") and "invalid YAML value" in issue.message


def test_errors_across_files_come_with_each_files_own(tmp_path: Path) -> None:
    # A file with an error of its own was left out of the checks across files, so its
    # clashes showed only once that error was fixed: not every error at once.
    (tmp_path / "a.yaml").write_text(metric_file(1))
    (tmp_path / "b.yaml").write_text(
        metric_file(1).replace("event_type: event_1", "event_type: event_1\n    colour: red")
        + "experiments:\n  - experiment: e\n    metrics: [metric_1, nope]\n"
    )
    (tmp_path / "c.yaml").write_text(
        "metrics:\n  - name: m3\n    type: aggregated\n    event_type: x\n    sla_hours: soon\n"
    )
    (tmp_path / "d.yaml").write_text("experiments:\n  - experiment: f\n    metrics: [m3]\n")

    loaded = load_catalog([tmp_path])

    found = {(Path(i.file).name, i.field): i.message for i in loaded.issues}
    assert found == {
        ("b.yaml", "metrics[0] (metric_1).colour"): "unknown key",
        (
            "b.yaml",
            "metrics[0] (metric_1).name",
        ): f"metric 'metric_1' is already defined in {tmp_path / 'a.yaml'}",
        ("b.yaml", "experiments[0] (e).metrics[1]"): "unknown metric 'nope'",
        ("c.yaml", "metrics[0] (m3).sla_hours"): found[("c.yaml", "metrics[0] (m3).sla_hours")],
        (
            "d.yaml",
            "experiments[0] (f).metrics[0]",
        ): f"metric 'm3' is defined in {tmp_path / 'c.yaml'}, which has errors",
    }
    assert list(loaded.files) == [str(tmp_path / "a.yaml")]
    assert len(loaded.issues) == len(found)  # each once


def test_a_folder_without_catalog_files_says_so(tmp_path: Path) -> None:
    # `udf config validate` of an empty folder printed nothing and exited 0.
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a catalog")
    loaded = load_catalog([tmp_path / "empty"])
    [issue] = loaded.issues
    assert (issue.file, issue.message) == (
        str(tmp_path / "empty"),
        "no catalog files (*.yaml, *.yml) in this directory",
    )
