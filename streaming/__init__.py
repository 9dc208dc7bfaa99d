"""Real-time experiment metrics on Flink (docs/streaming.md).

``udf stream replay`` / ``run`` (:mod:`streaming.runner`) feed the archive
(:mod:`streaming.feed`) and the periods (:mod:`streaming.snapshot`) to one Flink pipeline
(:mod:`streaming.pipeline`): the filter-events, filter-activations and aggregation jobs in
Flink SQL (:mod:`streaming.jobs`), then Python sinks (:mod:`streaming.functions`) that write
``aggregated`` result rows with ``source = stream`` and the 15-minute series.
"""
