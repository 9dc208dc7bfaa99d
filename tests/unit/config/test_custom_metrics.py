"""Custom metrics are checked when the catalog loads, reported with every other error."""

from __future__ import annotations

from pathlib import Path

from udf.config.catalog import CustomMetric
from udf.config.loader import config_files, load_catalog

SHIPPED = Path(__file__).parents[3] / "dags" / "configs" / "catalog"


def test_bad_custom_sql_is_a_config_issue_beside_the_others(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("""
metrics:
  - name: good
    type: custom
    sql: |
      SELECT experiment, `group`, period_start, user_id, count(*) AS value
      FROM counted_events
      GROUP BY experiment, `group`, period_start, user_id
  - name: clicks
    type: aggregated
    event_type: click
    owners: [not-an-email]
  - name: bad_metric
    type: custom
    sql: SELECT experiment, `group`, period_start, user_id, 1 AS value FROM users
  - name: dropper
    type: custom
    sql: DROP TABLE exposures
  - name: by_function
    type: custom
    function: team_metrics.sessions.deep
""")
    (tmp_path / "b.yaml").write_text("experiments:\n  - experiment: e\n    metrics: [good]\n")

    loaded = load_catalog([tmp_path])

    issues = {(Path(i.file).name, i.field): i.message for i in loaded.issues}
    assert issues == {
        ("a.yaml", "metrics[1] (clicks).owners[0]"): issues[
            ("a.yaml", "metrics[1] (clicks).owners[0]")
        ],
        (
            "a.yaml",
            "metrics[2] (bad_metric).sql",
        ): "custom SQL may read only the views exposures, counted_events; it reads 'users'",
        (
            "a.yaml",
            "metrics[3] (dropper).sql",
        ): "custom SQL must be one read-only SELECT; found DROP TABLE",
        (
            "a.yaml",
            "metrics[4] (by_function).function",
        ): "custom function must be named 'package.module:function'; got 'team_metrics.sessions.deep'",
        ("b.yaml", "experiments[0] (e).metrics[0]"):  # a.yaml is rejected whole
        f"metric 'good' is defined in {tmp_path / 'a.yaml'}, which has errors",
    }
    assert "not an email" in issues[("a.yaml", "metrics[1] (clicks).owners[0]")]
    assert loaded.files == {}
    text = "\n".join(str(i) for i in loaded.issues)
    assert "a.yaml: metrics[2] (bad_metric).sql: custom SQL may read only" in text


def test_the_users_sql_is_kept_as_written(tmp_path: Path) -> None:
    sql = "select experiment, `group`, period_start, user_id, 1 as value from exposures"
    metric = CustomMetric(type="custom", name="m", sql=sql)
    assert metric.sql == sql
    assert metric.params() == {"sql": sql}
    assert CustomMetric(type="custom", name="f", function="pkg.mod:fn").function == "pkg.mod:fn"


def test_the_shipped_catalog_validates() -> None:
    loaded = load_catalog([SHIPPED])
    assert loaded.ok, loaded.issues
    custom = [m for c in loaded.files.values() for m in c.metrics if isinstance(m, CustomMetric)]
    assert custom and all(m.sql and m.owners for m in custom)
    assert str(SHIPPED / "custom.yaml") in {str(p) for p in config_files([SHIPPED])}
