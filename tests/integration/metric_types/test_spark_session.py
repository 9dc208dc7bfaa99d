"""The process's one Spark session follows the settings each caller asks for.

One process can run the work of several homes (``dag.test()``, a test run): a home's
``spark.conf`` must not be ignored because another home started the session.
"""

from __future__ import annotations

import pytest

from metric_types.spark.session import get_session
from udf.settings import SparkSettings

pytestmark = pytest.mark.spark


def test_a_homes_sql_settings_reach_the_running_session_and_leave_with_it() -> None:
    first = get_session(SparkSettings())
    assert first.conf.get("spark.sql.shuffle.partitions") == "8"

    mine = SparkSettings(conf={"spark.sql.shuffle.partitions": "3",
                               "spark.sql.caseSensitive": "true"})  # fmt: skip
    session = get_session(mine)
    assert session is first  # no restart: the session can change these
    assert session.conf.get("spark.sql.shuffle.partitions") == "3"
    assert session.conf.get("spark.sql.caseSensitive") == "true"

    again = get_session(SparkSettings())
    assert again is first
    assert again.conf.get("spark.sql.shuffle.partitions") == "8"
    assert again.conf.get("spark.sql.caseSensitive") == "false"  # Spark's default again


def test_a_setting_only_a_start_can_give_restarts_the_session() -> None:
    first = get_session(SparkSettings())
    warehouse = SparkSettings(conf={"spark.sql.warehouse.dir": "/tmp/udf-test-warehouse"})
    session = get_session(warehouse)
    try:
        assert session is not first
        assert session.conf.get("spark.sql.warehouse.dir").endswith("/tmp/udf-test-warehouse")
        assert session.range(3).count() == 3
    finally:
        back = get_session(SparkSettings())  # the static setting it started with is dropped
    assert back is not session
    assert not back.conf.get("spark.sql.warehouse.dir").endswith("/tmp/udf-test-warehouse")
