"""Every command fails with one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from udf.cli import main


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner(env=env).invoke(main, list(args))


def test_unwritable_home_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "e.jsonl"
    source.write_text('{"user_id": 1, "event_type": "a", "ts": 1767225600000}\n')
    result = run("--home", "/proc/no-such-home", "data", "import", "--topic", "events", str(source))
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: /proc/no-such-home")


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--log-level", "loud", "data", "info"], None),
        (["data", "info"], {"UDF_LOG_LEVEL": "verbose"}),
    ],
)
def test_bad_log_level_is_a_usage_error(args: list[str], env: dict[str, str] | None, home) -> None:
    result = run(*args, env=env)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "log level" in result.output.lower() or "loud" in result.output


def test_generate_into_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home
) -> None:
    out = tmp_path / "here"
    out.mkdir()
    monkeypatch.chdir(out)
    result = run(
        "generate",
        "--out",
        ".",
        "--events",
        "2000",
        "--users",
        "200",
        "--spammers",
        "0",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").exists() and (out / "ramps.csv").exists()


def test_compute_refuses_metric_names_with_several_types(home) -> None:
    result = run("compute", "--metric-type", "aggregated", "--metric-type", "custom",
                 "--metric", "clicks", "--through", "2026-01-04")  # fmt: skip
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line == "error: --metric names metrics of one type: give a single --metric-type, not 2"
