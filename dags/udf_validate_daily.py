"""The daily streaming-vs-batch validation, run by Airflow (see udf.framework.validation_dag)."""

from udf.framework.validation_dag import build_validation_dag

udf_validate_daily = build_validation_dag()
