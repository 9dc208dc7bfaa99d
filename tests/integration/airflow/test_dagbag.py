"""The DAG folder as Airflow's dag processor sees it: every shipped config, no import errors.

A DAG per metric type (plus the two tool DAGs), the shape each pipeline DAG must have,
no heavy engine imported at parse time (checked in a fresh interpreter, where nothing else
could have imported them first), and a broken pipeline file that takes only its own DAG
down and is named, with its field, in the one import error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.airflow.harness import DAGS, REPO

pytestmark = pytest.mark.airflow

SHIPPED_PIPELINES = DAGS / "configs" / "pipelines"
SHIPPED_CATALOG = DAGS / "configs" / "catalog"
TOOLS = {"udf_on_demand", "udf_range_backfill"}
ARCHIVER = {"udf_archive_kafka"}  # not from a pipeline file: dags/udf_archive_kafka.py
VALIDATION = {"udf_validate_daily"}  # dags/udf_validate_daily.py
STREAM_OPS = {"udf_stream_supervisor", "udf_stream_upgrade"}  # dags/udf_stream_ops.py
HEAVY = ("pyspark", "pyflink", "scipy")


def bag(monkeypatch: pytest.MonkeyPatch, pipelines: Path) -> object:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("UDF_PIPELINES_DIR", str(pipelines))
    return DagBag(dag_folder=DAGS, safe_mode=True)


def test_shipped_configs_give_one_dag_per_metric_type(monkeypatch):
    import yaml
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from udf.config.loader import load_catalog
    from udf.framework.spec import load_pipelines

    dagbag = bag(monkeypatch, SHIPPED_PIPELINES)
    assert dagbag.import_errors == {}
    assert dagbag.captured_warnings == {}
    pipelines = load_pipelines(SHIPPED_PIPELINES)
    assert pipelines.issues == []
    types = {yaml.safe_load(p.read_text())["metric_type"] for p in SHIPPED_PIPELINES.glob("*.yaml")}
    assert (
        set(dagbag.dags) == {f"udf_{t}" for t in types} | TOOLS | ARCHIVER | VALIDATION | STREAM_OPS
    )
    catalog = load_catalog([SHIPPED_CATALOG])
    assert catalog.issues == []
    used = {m.type for c in catalog.files.values() for m in c.metrics}
    assert {f"udf_{t}" for t in used} <= set(dagbag.dags), "a catalog metric type has no DAG"

    for spec in pipelines.specs.values():
        dag = dagbag.dags[spec.dag_id]
        assert dag.params["scope"] == "" and dag.params["metrics"] == [] and not dag.params["force"]
        compute = dag.task_dict["compute_batch"]
        assert isinstance(compute, MappedOperator)  # dynamic task mapping over the plan
        assert compute.pool == spec.pool
        assert compute.retries == spec.dag_creation_args.retries
        assert dag.task_dict["notify"].trigger_rule == "all_done"
        assert dag.task_dict["fail_if_a_batch_failed"].trigger_rule == "one_failed"
        assert dag.max_active_runs == spec.dag_creation_args.max_active_runs
        assert required_in_the_form(dag) == ["force"]  # a checkbox: always has a value
    for tool in TOOLS:
        assert dagbag.dags[tool].schedule is None  # triggered with the params form
    assert dagbag.dags["udf_on_demand"].params["metric_type"] == "aggregated"
    archiver = dagbag.dags["udf_archive_kafka"]
    assert archiver.max_active_runs == 1 and archiver.schedule == "*/10 * * * *"
    assert archiver.task_dict["archive"].retries == 3
    # Empty metrics mean "all": the form must not insist on them.
    assert required_in_the_form(dagbag.dags["udf_on_demand"]) == [
        "experiment", "force", "metric_type",
    ]  # fmt: skip
    assert required_in_the_form(dagbag.dags["udf_range_backfill"]) == ["force", "metric_type"]


def required_in_the_form(dag) -> list[str]:
    """The params Airflow 3.3's trigger form marks required: a type that does not admit null."""
    found = []
    for name in dag.params:
        kind = dag.params.get_param(name).schema.get("type")
        if kind and not (isinstance(kind, list) and "null" in kind):
            found.append(name)
    return sorted(found)


def test_parsing_imports_no_engine():
    """In a fresh interpreter, as the dag processor's parse: no pyspark, pyflink or scipy."""
    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        f"print(json.dumps({{'errors': bag.import_errors, 'dags': sorted(bag.dags),"
        f" 'loaded': [m for m in {(*HEAVY, 'pandas')!r} if m in sys.modules]}}))\n"
    )
    env = {**os.environ, "UDF_PIPELINES_DIR": str(SHIPPED_PIPELINES)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert len(report["dags"]) == len(list(SHIPPED_PIPELINES.glob("*.yaml"))) + len(
        TOOLS | ARCHIVER | VALIDATION | STREAM_OPS
    )
    assert not set(report["loaded"]) & set(HEAVY), report["loaded"]


def test_a_broken_pipeline_file_hides_no_other_dag(monkeypatch, tmp_path):
    pipelines = tmp_path / "pipelines"
    shutil.copytree(SHIPPED_PIPELINES, pipelines)
    (pipelines / "calendar_day.yaml").write_text(
        "metric_type: calendar_day\ndag_creation_args:\n  pool_slots: 0\n  colour: red\n"
    )
    (pipelines / "days_in.yaml").write_text(
        "metric_type: days_in\ndag_creation_args:\n  schedule: every morning\n"
    )
    with pytest.warns(UserWarning, match="pipeline config left out"):
        dagbag = bag(monkeypatch, pipelines)
    assert (
        set(dagbag.dags)
        == {"udf_aggregated", "udf_custom"} | TOOLS | ARCHIVER | VALIDATION | STREAM_OPS
    )
    # udf_pipelines.py loads; the one import error is the errors file's, naming every issue
    assert [Path(f).name for f in dagbag.import_errors] == ["udf_config_errors.py"]
    error = dagbag.import_errors[str(DAGS / "udf_config_errors.py")]
    assert "3 config errors" in error
    assert (
        "calendar_day.yaml: dag_creation_args.pool_slots: Input should be greater than 0" in error
    )
    assert "calendar_day.yaml: dag_creation_args.colour: unknown key" in error
    assert "days_in.yaml: dag_creation_args.schedule: AirflowTimetableInvalid" in error
    warned = dagbag.captured_warnings[str(DAGS / "udf_pipelines.py")]
    assert len(warned) == 3 and all("pipeline config left out" in w for w in warned)
    tool = dagbag.dags["udf_on_demand"]
    assert tool.params.get_param("metric_type").schema["enum"] == ["aggregated", "custom"]
