"""Results, shared by every engine: the versioned schema, the comparisons and the stores.

``schema`` is the results row and its slices (docs/results.md), ``comparisons`` turns group
totals into lifts, intervals and p-values with the ``stats`` package, and ``stores`` writes
rows to the embedded SQL store or Apache Druid. Batch (``metric_types``), streaming, the
``udf`` command line and the Airflow plugin all read and write results through this package.
"""
