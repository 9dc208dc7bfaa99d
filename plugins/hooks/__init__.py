"""Hooks: the platform's services as Airflow hooks (thin; the work is in ``udf`` and ``metadata``)."""
