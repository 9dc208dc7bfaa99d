"""Custom metrics: a user's read-only SQL over the standard views, or a Spark function.

``sql_guard`` decides which SQL may run (and re-renders it for Spark); ``functions`` loads a
function named ``package.module:function``. Both refuse with a :class:`udf.errors.CustomMetricError`
that says why.
"""
