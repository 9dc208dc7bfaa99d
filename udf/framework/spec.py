"""A pipeline spec: one YAML file per metric type becomes one Airflow DAG.

The file says only what differs between pipelines (the pattern of the UDF design): the
``metric_type`` and the ``dag_creation_args`` (schedule, batch allocation, execution
settings). Everything else (readiness, batching, leases, backfill, notifications) is the
framework's, so adding a pipeline is adding a file::

    metric_type: aggregated
    dag_creation_args:
      schedule: "@daily"
      start_date: 2026-01-01
      backfill_days: 3
      pool_slots: 4

Files are validated strictly (unknown keys are errors) and every error of every file is
reported at once with its file and field; a bad file never hides the others.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from udf.config.loader import Loaded, config_files, load_files
from udf.config.models import Email, StrictModel
from udf.errors import ConfigError, ConfigIssue
from udf.vocabulary import METRIC_TYPES, MetricType

DEFAULT_START_DATE = date(2026, 1, 1)
PIPELINES_ENV = "UDF_PIPELINES_DIR"


def _iso_date(value: Any) -> Any:
    """YAML reads ``2026-01-01`` as a date, ``"2026-01-01"`` as a string: accept both."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
PoolName = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_.\-]+$")]


class DagCreationArgs(StrictModel):
    """How a pipeline is scheduled, batched and executed (the DAG's knobs, nothing else)."""

    schedule: str = Field(default="@daily", min_length=1)
    start_date: IsoDate = DEFAULT_START_DATE
    catchup: bool = False
    # How many days before a run's ds it looks back for skipped or failed metric-days;
    # older ones are marked skipped (and their owners told).
    backfill_days: NonNegativeInt = 3
    # The Airflow pool the compute tasks run in (default ``udf_<metric_type>``) and its
    # size: batches are sized so the pool's slots are used without overfilling them.
    pool: PoolName | None = None
    pool_slots: PositiveInt = 4
    max_batch_size: PositiveInt = 50
    target_batch_seconds: PositiveFloat = 600.0
    # Below this much estimated work a batch is not split further: each batch pays a scan.
    min_batch_seconds: NonNegativeFloat = 300.0
    # A metric with no measured duration yet is assumed to take this long.
    default_metric_seconds: PositiveFloat = 60.0
    max_active_runs: PositiveInt = 1
    lease_ttl_seconds: PositiveFloat = 300.0
    heartbeat_seconds: PositiveFloat = 30.0
    retries: NonNegativeInt = 2
    retry_delay_seconds: NonNegativeFloat = 300.0
    execution_timeout_seconds: PositiveFloat | None = None
    smtp_conn_id: str = Field(default="smtp_default", min_length=1)
    # The From of owner digests; None takes the SMTP connection's from_email.
    email_from: Email | None = None
    # How many delivery attempts a digest gets before it stays failed (recorded, not lost).
    notify_max_attempts: PositiveInt = 5
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _heartbeat_within_ttl(self) -> DagCreationArgs:
        if self.heartbeat_seconds * 2 > self.lease_ttl_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds:g}) must be at most half of "
                f"lease_ttl_seconds ({self.lease_ttl_seconds:g}), or one late heartbeat "
                "loses the lease"
            )
        return self


class PipelineSpec(StrictModel):
    """One pipeline (one DAG): a metric type and how its DAG is created."""

    metric_type: MetricType
    description: str = ""
    dag_creation_args: DagCreationArgs = Field(default_factory=DagCreationArgs)

    @model_validator(mode="before")
    @classmethod
    def _default_pool(cls, data: Any) -> Any:
        """The pool defaults to ``udf_<metric_type>``; filled in so readers never guess."""
        if not isinstance(data, dict) or not isinstance(data.get("metric_type"), str):
            return data
        args = data.get("dag_creation_args", {})
        if isinstance(args, dict) and args.get("pool") is None:
            data = {**data, "dag_creation_args": {**args, "pool": f"udf_{data['metric_type']}"}}
        return data

    @property
    def dag_id(self) -> str:
        return dag_id(self.metric_type)

    @property
    def args(self) -> DagCreationArgs:
        """Shorthand for :attr:`dag_creation_args`."""
        return self.dag_creation_args

    @property
    def pool(self) -> str:
        return self.dag_creation_args.pool or f"udf_{self.metric_type}"


def dag_id(metric_type: str) -> str:
    """The DAG id of a metric type's pipeline (``udf backfill`` addresses DAGs by it)."""
    return f"udf_{metric_type}"


class Pipelines(NamedTuple):
    """The specs that loaded (by file) and every issue of the files that did not."""

    specs: dict[str, PipelineSpec]
    issues: list[ConfigIssue]

    def by_type(self) -> dict[str, PipelineSpec]:
        return {spec.metric_type: spec for spec in self.specs.values()}


def default_pipelines_dir() -> Path:
    """``$UDF_PIPELINES_DIR``, else the shipped ``dags/configs/pipelines`` next to ``udf/``."""
    env = os.environ.get(PIPELINES_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "dags" / "configs" / "pipelines"


def load_pipelines(path: str | os.PathLike[str] | None = None) -> Pipelines:
    """Load every pipeline file under ``path`` (a directory or one file).

    Each file is validated on its own; two files for the same metric type are both
    refused (which one is meant is a guess the framework will not make), and every other
    file still loads, so one bad file never takes the other DAGs down.
    """
    root = Path(path) if path is not None else default_pipelines_dir()
    if not root.exists():
        return Pipelines({}, [ConfigIssue(str(root), "", "no such file or directory")])
    loaded: Loaded[PipelineSpec] = Loaded()
    for path_ in config_files([root]):
        try:
            one = load_files([path_], PipelineSpec)
        except ValueError as exc:  # PyYAML raises it for impossible dates like 2026-13-01
            loaded.issues.append(ConfigIssue(str(path_), "", f"invalid YAML: {exc}"))
            continue
        loaded.files.update(one.files)
        loaded.issues.extend(one.issues)
    seen: dict[str, list[str]] = {}
    for file, spec in loaded.files.items():
        seen.setdefault(spec.metric_type, []).append(file)
    for metric_type, files in seen.items():
        if len(files) < 2:
            continue
        for file in files:
            others = ", ".join(f for f in files if f != file)
            loaded.issues.append(
                ConfigIssue(
                    file,
                    "metric_type",
                    f"metric type {metric_type!r} is also defined in {others}: one file per type",
                )
            )
            del loaded.files[file]
    return Pipelines(dict(loaded.files), list(loaded.issues))


def pipeline_for(metric_type: str, path: str | os.PathLike[str] | None = None) -> PipelineSpec:
    """The spec of one metric type: its file if one loads, the defaults if none exists.

    A type whose file has errors is an error (running it with defaults would silently
    ignore what the user wrote).
    """
    if metric_type not in METRIC_TYPES:
        raise ConfigError(
            [ConfigIssue("--metric-type", "", f"unknown metric type {metric_type!r}; "
                         f"expected one of {', '.join(METRIC_TYPES)}")]
        )  # fmt: skip
    pipelines = load_pipelines(path)
    found = pipelines.by_type().get(metric_type)
    if found is not None:
        return found
    mine = [i for i in pipelines.issues if Path(i.file).stem == metric_type]
    if mine:
        raise ConfigError(mine)
    return PipelineSpec.model_validate({"metric_type": metric_type})
