"""Batch metric computing on Spark (the metric computing layer of the framework).

``registry`` lists the metric types (one small module each), ``semantics`` holds the metric
semantics of docs/contract.md §3 as Spark transformations shared by every type, and
``compute`` runs one batch (types, dates, metrics) over one shared scan. The rows it computes
go through the engine-neutral ``results`` package (schema, comparisons, stores). See
docs/metrics.md for the exact definitions.
"""
