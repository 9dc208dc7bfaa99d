"""The UDF pipelines: one Airflow DAG per metric type, plus the on-demand and range-backfill DAGs.

Thin on purpose: the DAGs come from the YAML files in ``dags/configs/pipelines`` (or
``$UDF_PIPELINES_DIR``) through :mod:`udf.framework.builder`. A bad file leaves only its own
DAG out (``udf_config_errors.py`` shows why, with file and field, as an import error).
"""

from udf.framework.builder import register

register(globals())
