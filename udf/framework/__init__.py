"""The Unified Dynamic Framework's core: everything the Airflow layer needs except Airflow.

One pipeline per metric type is declared in YAML (:mod:`.spec`). Each run plans
(:mod:`.plan`): it asks which metric-days have their inputs ready (:mod:`.readiness`), looks
back over the backfill window, records every metric-day's lifecycle state and splits the
ready ones into batches (:mod:`.batching`). Each batch is computed under leases
(:mod:`.tasks`) so no metric-day is computed twice at once, and owners of late or skipped
metric-days get one digest email per run (:mod:`.notify`). The Airflow DAG
(``udf/framework/builder.py``) only wires these functions into tasks, so all of this is
tested without a scheduler and runs in-process for ``udf backfill`` without a server.
"""
