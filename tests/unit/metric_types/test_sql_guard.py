"""Custom SQL: read-only queries over the two standard views run; anything else is refused, saying why."""

from __future__ import annotations

import pytest

from metric_types.custom.sql_guard import check_sql
from udf.errors import CustomMetricError, UdfError

OUT = "SELECT experiment, `group`, period_start, user_id"
BY_USER = "GROUP BY experiment, `group`, period_start, user_id"
ONE_SELECT = "custom SQL must be one read-only SELECT; found "
READS_ONLY = "custom SQL may read only the views exposures, counted_events"
COLUMNS = (
    "custom SQL must return exactly the columns experiment, group, period_start, user_id, value; "
)

ACCEPTED = {
    "per_user_count": f"{OUT}, count(*) AS value FROM counted_events WHERE event_type = 'click' {BY_USER}",
    "cte": f"""
        WITH kinds AS (
          {OUT}, count(DISTINCT event_type) AS n FROM counted_events {BY_USER}
        )
        {OUT}, n AS value FROM kinds
    """,
    "join_of_both_views": """
        SELECT e.experiment, e.`group`, e.period_start, e.user_id, count(c.ts) AS value
        FROM exposures AS e
        JOIN counted_events AS c
          ON c.experiment = e.experiment AND c.`group` = e.`group`
         AND c.period_start = e.period_start AND c.user_id = e.user_id
        WHERE c.ts >= e.exposure_ts
        GROUP BY e.experiment, e.`group`, e.period_start, e.user_id
    """,
    "union_all": f"{OUT}, 1.0 AS value FROM exposures UNION ALL {OUT}, value FROM counted_events",
    "window_function": f"""
        {OUT}, value FROM (
          {OUT}, value, row_number() OVER (PARTITION BY experiment, user_id ORDER BY ts) AS k
          FROM counted_events
        ) AS firsts
        WHERE k = 1
    """,
    "ctes_reading_earlier_ctes": f"""
        WITH a AS ({OUT}, value FROM counted_events), b AS ({OUT}, value FROM a)
        {OUT}, sum(value) AS value FROM b {BY_USER}
    """,
    "lateral_view_generator": f"{OUT}, x AS value FROM exposures LATERAL VIEW explode(array(1, 2)) t AS x",
    "upper_case_view_and_hint": "SELECT /*+ BROADCAST(e) */ e.experiment, e.`group`, e.period_start, e.user_id, 1 AS value FROM EXPOSURES AS e",
    "from_first_and_parentheses": "(FROM exposures SELECT experiment, `group`, period_start, user_id, 1 AS value)",
    "trailing_semicolon_and_comments": f"-- users with a search\n{OUT}, 1 AS value /* one */ FROM counted_events;",
}


@pytest.mark.parametrize("sql", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_queries_are_rendered_for_spark(sql: str) -> None:
    rendered = check_sql(sql)
    assert rendered.startswith(("SELECT", "WITH", "(SELECT"))
    assert check_sql(rendered) == rendered  # the rendering is itself accepted, unchanged
    assert "--" not in rendered and "/* one */" not in rendered  # comments never reach Spark


REFUSED = {
    "insert": ("INSERT INTO results SELECT * FROM exposures", ONE_SELECT + "INSERT INTO"),
    "insert_overwrite_directory": (
        "INSERT OVERWRITE DIRECTORY '/tmp/out' USING parquet SELECT * FROM exposures",
        ONE_SELECT + "INSERT OVERWRITE DIRECTORY",
    ),
    "insert_overwrite_local_directory": (
        "INSERT OVERWRITE LOCAL DIRECTORY '/tmp/out' SELECT * FROM exposures",
        ONE_SELECT + "INSERT OVERWRITE LOCAL DIRECTORY",
    ),
    "drop_table": ("DROP TABLE exposures", ONE_SELECT + "DROP TABLE"),
    "delete": ("DELETE FROM counted_events WHERE 1 = 1", ONE_SELECT + "DELETE FROM"),
    "create_temp_view": (
        "CREATE TEMP VIEW exposures AS SELECT 1 AS user_id",
        ONE_SELECT + "CREATE TEMP VIEW",
    ),
    "create_function": (
        "CREATE TEMPORARY FUNCTION f AS 'com.example.Evil'",
        ONE_SELECT + "CREATE TEMPORARY FUNCTION",
    ),
    "select_then_drop": (
        f"{OUT}, 1 AS value FROM exposures; DROP TABLE x",
        "custom SQL must be one read-only SELECT; found 2 statements (SELECT, DROP TABLE)",
    ),
    "set_conf": ("SET spark.sql.ansi.enabled=false", ONE_SELECT + "SET"),
    "add_jar": ("ADD JAR /tmp/evil.jar", ONE_SELECT + "ADD JAR"),
    "cache_table": ("CACHE TABLE exposures", ONE_SELECT + "CACHE TABLE"),
    "use_database": ("USE other_db", ONE_SELECT + "USE"),
    "values_only": ("VALUES (1, 2)", ONE_SELECT + "VALUES"),
    "drop_in_cte": (
        f"WITH d AS (DROP TABLE x) {OUT}, 1 AS value FROM d",
        ONE_SELECT + "DROP TABLE inside it",
    ),
    "insert_in_cte": (
        f"WITH d AS (INSERT INTO t SELECT 1) {OUT}, 1 AS value FROM d",
        ONE_SELECT + "INSERT INTO inside it",
    ),
    "select_into": (
        f"{OUT}, 1 AS value INTO t FROM exposures",
        ONE_SELECT + "SELECT ... INTO inside it",
    ),
    "another_table": (f"{OUT}, 1 AS value FROM users", READS_ONLY + "; it reads 'users'"),
    "another_table_in_subquery": (
        f"{OUT}, 1 AS value FROM exposures WHERE user_id IN (SELECT user_id FROM staff)",
        READS_ONLY + "; it reads 'staff'",
    ),
    "cte_shadowing_a_table": (
        f"WITH users AS (SELECT * FROM users) {OUT}, 1 AS value FROM users",
        READS_ONLY + "; it reads 'users' (a CTE can be read only after its definition)",
    ),
    "db_qualified_view": (
        f"{OUT}, 1 AS value FROM prod.exposures",
        READS_ONLY + ", without a database or catalog; it reads 'prod.exposures'",
    ),
    "catalog_qualified_view": (
        f"{OUT}, 1 AS value FROM spark_catalog.default.exposures",
        READS_ONLY + ", without a database or catalog; it reads 'spark_catalog.default.exposures'",
    ),
    "parquet_path": (
        f"{OUT}, 1 AS value FROM parquet.`/tmp/x`",
        "custom SQL reads a file path (parquet.`/tmp/x`)",
    ),
    "csv_path_in_join": (
        f"{OUT}, 1 AS value FROM exposures JOIN csv.`s3://bucket/users.csv` USING (user_id)",
        "custom SQL reads a file path (csv.`s3://bucket/users.csv`)",
    ),
    "table_valued_function": (
        f"{OUT}, id AS value FROM range(10)",
        "custom SQL may not read from a table-valued function (RANGE(10)); read the views exposures, counted_events",
    ),
    "lateral_table_valued_function": (
        f"{OUT}, 1 AS value FROM exposures, LATERAL range(3)",
        "custom SQL may not read from a table-valued function (RANGE(3)); read the views exposures, counted_events",
    ),
    "identifier_clause": (
        f"{OUT}, 1 AS value FROM IDENTIFIER('users')",
        "custom SQL may not read from a table-valued function (IDENTIFIER('users')); read the views exposures, counted_events",
    ),
    "reflect": (
        f"{OUT}, reflect('java.lang.Runtime', 'getRuntime') AS value FROM exposures",
        "custom SQL may not call reflect() (it runs arbitrary Java)",
    ),
    "java_method": (
        f"{OUT}, java_method('java.lang.System', 'exit', 1) AS value FROM exposures",
        "custom SQL may not call java_method() (it runs arbitrary Java)",
    ),
    "input_file_name": (
        f"{OUT}, length(input_file_name()) AS value FROM exposures",
        "custom SQL may not call input_file_name() (it reveals the files behind the views)",
    ),
    "database_function": (
        f"{OUT}, udfs.evil(user_id) AS value FROM exposures",
        "custom SQL may call only built-in functions, not a database's; it calls udfs.evil()",
    ),
    "transform_script": (
        "SELECT TRANSFORM(user_id) USING 'cat' AS (value) FROM exposures",
        "custom SQL may not run a script (TRANSFORM ... USING): it runs a program on the workers",
    ),
    "variable_substitution": (
        f"{OUT}, length('${{env:AWS_SECRET_ACCESS_KEY}}') AS value FROM exposures",
        "custom SQL may not contain ${...}: Spark would substitute configuration or environment values into it",
    ),
    "select_star": (
        "SELECT * FROM exposures",
        "custom SQL must list its output columns (experiment, group, period_start, user_id, value); it selects *",
    ),
    "qualified_star": (
        "SELECT e.* FROM exposures AS e",
        "custom SQL must list its output columns (experiment, group, period_start, user_id, value); it selects e.*",
    ),
    "missing_value": (f"{OUT} FROM exposures", COLUMNS + "it lacks value"),
    "misnamed_value": (
        f"{OUT}, 1 AS v FROM exposures",
        COLUMNS + "it lacks value; it also returns 'v'",
    ),
    "extra_column": (
        f"{OUT}, 1 AS value, exposure_ts FROM exposures",
        COLUMNS + "it also returns 'exposure_ts'",
    ),
    "duplicate_column": (
        f"{OUT}, 1 AS value, user_id FROM exposures",
        COLUMNS + "it returns 'user_id' more than once",
    ),
    "unnamed_column": (
        f"{OUT}, count(*) FROM counted_events {BY_USER}",
        "custom SQL must name every output column with AS; COUNT(*) has no name",
    ),
    "empty": ("  ;  ", "custom SQL is empty"),
}


@pytest.mark.parametrize(("sql", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_queries_say_why(sql: str, reason: str) -> None:
    with pytest.raises(CustomMetricError) as refused:
        check_sql(sql)
    assert str(refused.value) == reason
    assert isinstance(refused.value, UdfError)


def test_unparseable_sql_gives_line_and_column() -> None:
    with pytest.raises(CustomMetricError) as refused:
        check_sql(f"{OUT}, 1 AS value\nFROM WHERE x")
    assert str(refused.value) == (
        "custom SQL does not parse at line 2, column 10: "
        "Expected table name but got 'WHERE' (near 'WHERE')"
    )


def test_unterminated_string_is_a_parse_error() -> None:
    with pytest.raises(CustomMetricError, match=r"^custom SQL does not parse: Error tokenizing"):
        check_sql(f"{OUT}, 'abc AS value FROM exposures")
