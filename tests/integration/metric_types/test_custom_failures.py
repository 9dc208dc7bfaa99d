"""Issue 11 (2, 3, 7): a bad custom metric fails alone, with a one-line reason in ``udf status``.

Each test loads a catalog with one good custom metric and bad ones into the contract's worked
example (docs/contract.md §3: one user per group and period, so a doubled user is visible as
``exposed`` 2), runs ``udf compute`` and checks that the command names the bad metric in
one line, that ``udf status`` records it ``failed`` with the reason while the good metric is
``done``, and that the good metric's rows are the example's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from metric_types.custom.runner import standard_views, view_schema
from metric_types.plan import MetricPlan
from metric_types.semantics import Columns, group_totals, per_user
from metric_types.spark.session import get_session
from results.stores import open_store
from tests.conftest import CONTRACT_EXAMPLES
from udf.cli import main
from udf.home import Home
from udf.settings import load_settings

pytestmark = pytest.mark.spark

DAY = "2026-01-04"  # the end of the example's first period: final numbers
KEYS = "experiment, `group`, period_start, user_id"
GOOD = f"SELECT {KEYS}, COUNT(*) AS value FROM counted_events GROUP BY {KEYS}"


def udf(home: Home, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, ["--home", str(home.root), *args])
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def example(home: Home) -> Home:
    for topic in ("events", "activations"):
        udf(home, "data", "import", "--topic", topic, str(CONTRACT_EXAMPLES / f"{topic}.jsonl"))
    udf(home, "ramps", "import", str(CONTRACT_EXAMPLES / "ramps.csv"))
    (home.root / "settings.yaml").write_text("spam_cap: 2\n")
    return home


def load_catalog(home: Home, tmp_path: Path, metrics: dict[str, str], **extra: object) -> None:
    """``good`` and ``metrics`` (SQL, or ``module:function`` for a function), selected by exp."""
    catalog = {
        "metrics": [
            {
                "name": name,
                "type": "custom",
                ("function" if ":" in body else "sql"): body,
                **extra.get(name, {}),
            }  # type: ignore[dict-item]
            for name, body in {"good": GOOD, **metrics}.items()
        ],
        "experiments": [{"experiment": "exp", "metrics": ["good", *metrics]}],
    }
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    udf(home, "config", "load", str(path))


def status(home: Home) -> dict[str, dict]:
    runs = json.loads(udf(home, "status", "--date", DAY, "--format", "json"))
    return {r["metric"]: r for r in runs}


def rows(home: Home) -> dict[tuple[str, str], tuple[int, int, float]]:
    found = open_store(home, load_settings(home)).read(source="batch", metric_type="custom")
    return {(r.metric, r.group): (r.exposed, r.n, r.sum) for r in found if r.date == DAY}


def compute_fails(home: Home, *bad: str) -> str:
    """``udf compute`` exits 1 with one line naming each bad metric; returns that line."""
    result = CliRunner().invoke(
        main, ["--home", str(home.root), "compute", "--metric-type", "custom", "--through", DAY]
    )
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for name in bad:
        assert f"{name} {DAY}:" in errors[0]
    return errors[0]


def assert_good_alone(home: Home, *bad: str) -> dict[str, dict]:
    """The good metric is done with the example's numbers; the bad ones failed, no rows."""
    runs = status(home)
    assert runs["good"]["state"] == "done"
    for name in bad:
        assert runs[name]["state"] == "failed" and "\n" not in runs[name]["reason"]
    # Through Jan 4 the example's control user has 2 counted events, the treatment user 2
    # (spam cap 2): one user per group, never doubled.
    assert rows(home) == {("good", "control"): (1, 1, 2.0), ("good", "treatment"): (1, 1, 2.0)}
    return runs


def test_two_rows_per_user_are_refused_naming_the_metric(example: Home, tmp_path: Path) -> None:
    doubled = f"SELECT {KEYS}, 1 AS value FROM exposures UNION ALL SELECT {KEYS}, 1 AS value FROM exposures"
    # The finding: joined into the per-user table as it comes, the metric's two rows count
    # its one user twice, in `exposed` and `n` alike.
    assert doubled_exposed(doubled) == 2
    load_catalog(example, tmp_path, {"doubled": doubled})
    line = compute_fails(example, "doubled")
    runs = assert_good_alone(example, "doubled")
    reason = runs["doubled"]["reason"]
    assert reason.startswith("custom metric 'doubled' returns 2 rows for one user (experiment exp")
    assert "one value per (experiment, group, period, user)" in reason and reason in line


def doubled_exposed(sql: str) -> int:
    """``exposed`` of one user's group when ``sql``'s rows go straight into the totals."""
    spark = get_session().newSession()  # views of its own
    users = spark.createDataFrame(
        [(0, 0, "exp", "control", 0, 100, 1, 10)],
        "exposure_id long, day_in int, experiment string, `group` string, period_start long, "
        "period_end long, user_id long, t_u long",
    )
    counted = spark.createDataFrame([], view_schema("counted_events"))
    for name, view in standard_views(users, counted).items():
        view.createOrReplaceTempView(name)
    metric = MetricPlan("doubled", "custom", sql=sql, experiments=("exp",))
    columns = Columns.of([metric], {})
    totals = group_totals(per_user(users, counted, columns, {"doubled": spark.sql(sql)}), columns)
    [total] = totals.collect()
    assert total["exposed"] == total["u0_sum"]  # every row of the metric counted as a user
    return int(total["exposed"])


def test_counted_events_in_many_user_partitions_give_the_same_values(
    example: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import metric_types.semantics

    # One exposure per partition: custom code's counted events are joined by user_id into
    # many partitions (the views of a large slice); the example's numbers stay the same.
    monkeypatch.setattr(metric_types.semantics, "EXPOSURES_PER_PARTITION", 1)
    distinct = (
        f"SELECT {KEYS}, COUNT(DISTINCT event_type) AS value FROM counted_events GROUP BY {KEYS}"
    )
    load_catalog(example, tmp_path, {"kinds": distinct})
    udf(example, "compute", "--metric-type", "custom", "--through", DAY)
    assert status(example)["kinds"]["state"] == "done"
    # Through Jan 4: the control user's 2 counted events are of 2 types, the treatment
    # user's 2 of one type (docs/contract.md §3).
    assert rows(example) == {
        ("good", "control"): (1, 1, 2.0), ("good", "treatment"): (1, 1, 2.0),
        ("kinds", "control"): (1, 1, 2.0), ("kinds", "treatment"): (1, 1, 1.0),
    }  # fmt: skip


def test_sql_spark_cannot_plan_or_run_fails_alone(
    example: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "issue11_broken_metrics.py").write_text(
        "def broken(views):\n    raise KeyError('sessions')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    bad = {
        # a Spark function that raises
        "broken_function": "issue11_broken_metrics:broken",
        # sqlglot re-renders current_catalog() as CURRENT_CATALOG, a name Spark cannot resolve
        "catalog_name": f"SELECT {KEYS}, length(current_catalog()) AS value FROM exposures",
        # a string value: refused by its type before anything runs
        "text_value": f"SELECT {KEYS}, 'abc' AS value FROM exposures",
        # plans (a string cast to int), fails on the data: CAST_INVALID_INPUT
        "bad_cast": f"SELECT {KEYS}, CAST(event_type AS INT) AS value FROM counted_events",
    }
    load_catalog(example, tmp_path, bad)
    compute_fails(example, *bad)
    runs = assert_good_alone(example, *bad)
    assert runs["catalog_name"]["reason"].startswith(
        "custom metric 'catalog_name': Spark cannot plan its SQL: [UNRESOLVED_COLUMN"
    )
    assert "`CURRENT_CATALOG` cannot be resolved" in runs["catalog_name"]["reason"]
    assert runs["text_value"]["reason"] == (
        "custom metric 'text_value' must return value as a number, not string"
    )
    assert runs["broken_function"]["reason"] == (
        "custom metric 'broken_function': function 'issue11_broken_metrics:broken' raised KeyError: "
        "'sessions'"
    )
    assert runs["bad_cast"]["reason"].startswith(
        "custom metric 'bad_cast' failed in Spark: [CAST_INVALID_INPUT] The value '"
    )


def test_a_custom_metric_past_its_time_limit_is_cancelled(example: Home, tmp_path: Path) -> None:
    # 10^10 generated rows per exposed user: hours of work, cancelled after 2 s.
    forever = (
        f"SELECT {KEYS}, SUM(a * b) AS value FROM exposures "
        "LATERAL VIEW explode(sequence(1, 100000)) x AS a "
        f"LATERAL VIEW explode(sequence(1, 100000)) y AS b GROUP BY {KEYS}"
    )
    load_catalog(example, tmp_path, {"forever": forever}, forever={"timeout_seconds": 2})
    compute_fails(example, "forever")
    runs = assert_good_alone(example, "forever")
    assert runs["forever"]["reason"] == (
        "custom metric 'forever' ran longer than its time limit of 2 s and was cancelled"
    )
    # The session is still usable: the cancelled jobs are gone.
    assert get_session().range(3).count() == 3


def test_validate_plan_catches_what_parsing_cannot(tmp_path: Path) -> None:
    """Parsing passes both queries; planning against empty views refuses them, with file
    and field, beside a good query that it accepts."""
    catalog = {
        "metrics": [
            {"name": "good", "type": "custom", "sql": GOOD},
            {"name": "catalog_name", "type": "custom",
             "sql": f"SELECT {KEYS}, length(current_catalog()) AS value FROM exposures"},
            {"name": "text_value", "type": "custom",
             "sql": f"SELECT {KEYS}, 'abc' AS value FROM exposures"},
        ]
    }  # fmt: skip
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    parsed = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert parsed.exit_code == 0, parsed.output  # the finding: validation let them through
    planned = CliRunner().invoke(main, ["config", "validate", "--plan", str(path)])
    assert planned.exit_code == 1
    assert planned.output.splitlines()[-3:] == [
        "error: 2 config errors:",
        f"  {path}: metrics[1] (catalog_name).sql: Spark cannot plan the custom SQL: "
        "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with "
        "name `CURRENT_CATALOG` cannot be resolved. Did you mean one of the following? "
        "[`period_end`, `period_start`, `user_id`, `experiment`, `exposure_ts`].",
        f"  {path}: metrics[2] (text_value).sql: custom SQL must return value as a number, "
        "not string",
    ]


def test_validate_plan_applies_the_homes_spark_sql_options(home: Home, tmp_path: Path) -> None:
    """``--plan`` plans with the home's ``spark.conf``: with case-sensitive analysis, a
    column named in another case no longer resolves (it does with the defaults), though the
    process's session was started without the option."""
    sql = f"SELECT {KEYS}, LENGTH(USER_ID) AS value FROM exposures"
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump({"metrics": [{"name": "loud", "type": "custom", "sql": sql}]}))
    default = CliRunner().invoke(main, ["config", "validate", "--plan", str(path)])
    assert default.exit_code == 0, default.output
    settings = {"spark": {"conf": {"spark.sql.caseSensitive": "true"}}}
    (home.root / "settings.yaml").write_text(yaml.safe_dump(settings))
    strict = CliRunner().invoke(main, ["config", "validate", "--plan", str(path)])
    assert strict.exit_code == 1
    assert "`USER_ID` cannot be resolved" in strict.output
