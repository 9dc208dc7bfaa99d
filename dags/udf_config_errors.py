"""Shows pipeline config errors in Airflow's UI: this file holds no DAG.

When a file in ``dags/configs/pipelines`` (or ``$UDF_PIPELINES_DIR``) is invalid, importing
this module raises one error listing every issue with its file and field, so Airflow shows
it as this file's import error, while ``udf_pipelines.py`` still loads every good DAG.
With valid configs it imports cleanly and the DagBag has no import errors.
"""

from udf.framework.builder import check_configs

check_configs()
