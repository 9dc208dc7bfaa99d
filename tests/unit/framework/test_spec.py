"""Pipeline specs: strict, defaulted, every error of every file reported at once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from udf.errors import ConfigError
from udf.framework.spec import (
    METRIC_TYPES,
    PipelineSpec,
    default_pipelines_dir,
    load_pipelines,
    pipeline_for,
)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_the_shipped_pipelines_load_one_per_metric_type() -> None:
    loaded = load_pipelines(default_pipelines_dir())
    assert loaded.issues == []
    assert sorted(loaded.by_type()) == sorted(METRIC_TYPES)
    for metric_type, spec in loaded.by_type().items():
        assert spec.dag_id == f"udf_{metric_type}"
        assert spec.dag_creation_args.pool == f"udf_{metric_type}"


def test_defaults_fill_everything_but_the_metric_type() -> None:
    spec = PipelineSpec.model_validate({"metric_type": "days_in"})
    args = spec.dag_creation_args
    assert (args.schedule, args.catchup, args.backfill_days, args.pool, args.pool_slots) == (
        "@daily",
        False,
        3,
        "udf_days_in",
        4,
    )
    assert (args.lease_ttl_seconds, args.heartbeat_seconds, args.retries) == (300, 30, 2)
    assert args.target_batch_seconds == 600 and args.smtp_conn_id == "smtp_default"


def test_start_date_accepts_a_yaml_date_or_an_iso_string(tmp_path: Path) -> None:
    write(
        tmp_path, "a.yaml", "metric_type: aggregated\ndag_creation_args: {start_date: 2026-02-03}\n"
    )
    write(
        tmp_path, "b.yaml", "metric_type: custom\ndag_creation_args: {start_date: '2026-02-04'}\n"
    )
    specs = load_pipelines(tmp_path).by_type()
    assert specs["aggregated"].dag_creation_args.start_date == date(2026, 2, 3)
    assert specs["custom"].dag_creation_args.start_date == date(2026, 2, 4)


def test_every_error_in_every_file_is_reported_with_file_and_field(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", "metric_type: aggregated\n")
    write(
        tmp_path,
        "bad.yaml",
        "metric_type: calendar_day\n"
        "dag_creation_args:\n"
        "  pool_slots: 0\n"
        "  schedul: '@hourly'\n"
        "  start_date: '2026-13-01'\n"
        "  lease_ttl_seconds: 'long'\n",
    )
    write(tmp_path, "worse.yaml", "metric_type: hourly\nextra: 1\n")
    write(tmp_path, "broken.yaml", "metric_type: [unclosed\n")
    write(
        tmp_path,
        "baddate.yaml",
        "metric_type: custom\ndag_creation_args: {start_date: 2026-02-30}\n",
    )
    write(
        tmp_path,
        "slow.yaml",
        "metric_type: days_in\ndag_creation_args: {lease_ttl_seconds: 60, heartbeat_seconds: 45}\n",
    )
    loaded = load_pipelines(tmp_path)
    assert sorted(loaded.by_type()) == ["aggregated"]  # the good file still loads
    found = {(Path(i.file).name, i.field) for i in loaded.issues}
    assert {
        ("bad.yaml", "dag_creation_args.pool_slots"),
        ("bad.yaml", "dag_creation_args.schedul"),
        ("bad.yaml", "dag_creation_args.start_date"),
        ("bad.yaml", "dag_creation_args.lease_ttl_seconds"),
        ("worse.yaml", "metric_type"),
        ("worse.yaml", "extra"),
        ("broken.yaml", ""),
        ("baddate.yaml", ""),
        ("slow.yaml", "dag_creation_args"),
    } <= found
    message = str(ConfigError(loaded.issues))
    assert "unknown key" in message and "heartbeat_seconds" in message


def test_two_files_for_one_metric_type_are_both_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "metric_type: aggregated\n")
    write(tmp_path, "b.yaml", "metric_type: aggregated\ndag_creation_args: {pool_slots: 2}\n")
    write(tmp_path, "c.yaml", "metric_type: custom\n")
    loaded = load_pipelines(tmp_path)
    assert sorted(loaded.by_type()) == ["custom"]
    assert sorted((Path(i.file).name, i.field) for i in loaded.issues) == [
        ("a.yaml", "metric_type"),
        ("b.yaml", "metric_type"),
    ]
    assert all("also defined in" in i.message for i in loaded.issues)


def test_pipeline_for_uses_the_file_the_defaults_or_refuses_a_broken_file(tmp_path: Path) -> None:
    write(
        tmp_path, "aggregated.yaml", "metric_type: aggregated\ndag_creation_args: {pool_slots: 7}\n"
    )
    write(tmp_path, "custom.yaml", "metric_type: custom\ndag_creation_args: {pool_slots: -1}\n")
    assert pipeline_for("aggregated", tmp_path).dag_creation_args.pool_slots == 7
    assert pipeline_for("days_in", tmp_path).dag_creation_args.pool_slots == 4
    with pytest.raises(ConfigError, match="pool_slots"):
        pipeline_for("custom", tmp_path)
    with pytest.raises(ConfigError, match="unknown metric type"):
        pipeline_for("hourly", tmp_path)


def test_a_missing_folder_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    loaded = load_pipelines(tmp_path / "nope")
    assert loaded.specs == {} and "no such file" in loaded.issues[0].message
