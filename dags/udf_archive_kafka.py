"""The Kafka archiver, run by Airflow every few minutes (see udf.framework.archiver_dag)."""

from udf.framework.archiver_dag import build_archiver_dag

udf_archive_kafka = build_archiver_dag()
