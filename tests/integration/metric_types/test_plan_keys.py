"""Which custom SQL the plan alone proves to give one row per user (no check shuffle needed).

The expectations are SQL facts: a ``GROUP BY`` of the four keys yields one row per key (also
with a filter or a cast on top); a ``UNION ALL``, a plain projection of events, a grouping by
more columns than the keys or a ``DISTINCT`` over the value too may give two rows per key.
"""

from __future__ import annotations

import pytest

from metric_types.custom.runner import KEYS, view_schema
from metric_types.spark.plan_keys import unique_on
from metric_types.spark.session import get_session

pytestmark = pytest.mark.spark

K = "experiment, `group`, period_start, user_id"
UNIQUE = {
    "count distinct": f"SELECT {K}, COUNT(DISTINCT event_type) AS value FROM counted_events GROUP BY 1, 2, 3, 4",
    "group by all": f"SELECT {K}, SUM(value) AS value FROM counted_events GROUP BY ALL",
    "a key recomputed": "SELECT upper(experiment) AS experiment, `group`, period_start, user_id, "
    "COUNT(*) AS value FROM counted_events GROUP BY 1, 2, 3, 4",
}
MAYBE_TWICE = {
    "union all": f"SELECT {K}, 1 AS value FROM exposures UNION ALL SELECT {K}, 1 AS value FROM exposures",
    "one row per event": f"SELECT {K}, ts AS value FROM counted_events",
    "grouped by more": f"SELECT {K}, COUNT(*) AS value FROM counted_events GROUP BY {K}, event_type",
    "distinct with the value": f"SELECT DISTINCT {K}, ts AS value FROM counted_events",
}


@pytest.fixture(scope="module")
def spark():  # type: ignore[no-untyped-def]
    session = get_session().newSession()  # views of its own
    for name in ("exposures", "counted_events"):
        session.createDataFrame([], view_schema(name)).createOrReplaceTempView(name)
    return session


def keyed(spark, sql: str):  # type: ignore[no-untyped-def]
    """As the runner selects a metric's rows: the keys, ``value`` as a double, its experiments."""
    from pyspark.sql import functions as F

    frame = spark.sql(sql).select(*KEYS, F.col("value").cast("double").alias("value"))
    return frame.where(F.col("experiment").isin(["exp"]))


@pytest.mark.parametrize("name", sorted(UNIQUE))
def test_a_group_by_the_keys_is_unique(spark, name: str) -> None:  # type: ignore[no-untyped-def]
    assert unique_on(keyed(spark, UNIQUE[name]), range(len(KEYS)))


@pytest.mark.parametrize("name", sorted(MAYBE_TWICE))
def test_other_plans_are_checked_on_the_data(spark, name: str) -> None:  # type: ignore[no-untyped-def]
    assert not unique_on(keyed(spark, MAYBE_TWICE[name]), range(len(KEYS)))
