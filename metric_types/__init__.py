"""Batch metric computing (the metric computing layer of the framework).

``registry`` lists the metric types (one small module each), ``semantics`` holds CONTRACT.md
§3 as Spark transformations shared by every type, ``compute`` runs one batch (types, dates,
metrics) over one shared scan, ``results`` is the versioned results schema and ``stores``
writes it to the embedded SQL store or Druid. See docs/metrics.md for the exact definitions.
"""
