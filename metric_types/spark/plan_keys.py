"""What Spark's optimizer already knows about a DataFrame's rows, read from its plan.

:func:`unique_on` answers "can two rows share these columns?" from the optimized logical
plan's *distinct keys* (Spark's ``DistinctKeyVisitor``: a ``GROUP BY`` yields one row per
grouping key, a projection or filter keeps that, a ``UNION ALL`` loses it), so a caller can
skip a shuffle that would only confirm it. It is conservative: whenever the plan cannot be
read (Spark Connect has no JVM plan in this process, the propagation is disabled, an
unexpected object), the answer is ``False`` and the caller checks the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from udf.logging import get_logger

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = get_logger(__name__)


def unique_on(frame: DataFrame, positions: range) -> bool:
    """Whether the plan guarantees at most one row per value of the output columns at
    ``positions`` (e.g. ``range(4)``: the first four columns)."""
    jdf = getattr(frame, "_jdf", None)  # classic sessions only
    if jdf is None:
        return False
    try:
        plan = jdf.queryExecution().optimizedPlan()
        output = plan.output()
        wanted = {output.apply(i).exprId().id() for i in positions}
        keys = plan.distinctKeys().iterator()
        while keys.hasNext():
            if _within(keys.next(), wanted):
                return True
    except Exception as exc:  # an API this Spark lacks: check the data instead
        log.info("plan keys unreadable", reason=f"{type(exc).__name__}: {exc}"[:200])
    return False


def _within(key_set: Any, wanted: set[int]) -> bool:
    """Whether every expression of one distinct-key set is an output column of ``wanted``."""
    expressions = key_set.iterator()
    while expressions.hasNext():
        expression = expressions.next()
        if expression.getClass().getSimpleName() != "AttributeReference":
            return False
        if expression.exprId().id() not in wanted:
            return False
    return True
