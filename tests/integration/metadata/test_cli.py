"""``udf ramps import``, ``udf experiments`` and ``udf db`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from metadata.db import HEAD_REVISION
from tests.conftest import CONTRACT_EXAMPLES
from udf.cli import main

CONTRACT_RAMPS = CONTRACT_EXAMPLES / "ramps.csv"
HEADER = "experiment,group,ramp_ts,allocation\n"
DAY = 86_400_000
T0 = 1767225600000


def udf(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def test_import_contract_example_and_list_periods(home) -> None:
    result = udf("ramps", "import", str(CONTRACT_RAMPS))
    assert result.exit_code == 0, result.output
    assert "1 experiment(s) (1 new), 2 group(s) (2 new), 6 ramp(s): 6 added" in result.stdout

    again = udf("ramps", "import", str(CONTRACT_RAMPS))
    assert again.exit_code == 0
    assert "0 added, 0 updated, 6 unchanged" in again.stdout
    assert "nothing changed" in again.stdout

    listed = udf("experiments", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    (exp,) = json.loads(listed.stdout)
    assert exp["experiment"] == "exp"
    assert [g["group"] for g in exp["groups"]] == ["control", "treatment"]
    for group in exp["groups"]:
        assert [r["ramp_ts"] for r in group["ramps"]] == [T0, T0 + DAY, T0 + 5 * DAY]
        assert [(p["start"], p["end"]) for p in group["periods"]] == [
            (T0, T0 + 4 * DAY),  # extended by the re-ramp at T0+1d
            (T0 + 5 * DAY, T0 + 8 * DAY),  # the ramp at T0+5d is after the end: a new period
        ]
        assert group["periods"][0]["start_utc"] == "2026-01-01T00:00:00Z"

    wider = json.loads(udf("experiments", "list", "--format", "json", "--window-days", "5").stdout)
    assert len(wider[0]["groups"][0]["periods"]) == 1  # T0+5d is before T0+1d+5d
    # without the option, the home's window: the periods batch and stream compute
    (home.root / "settings.yaml").write_text("window_days: 5\n")
    homes = json.loads(udf("experiments", "list", "--format", "json").stdout)
    assert homes[0]["groups"][0]["periods"] == wider[0]["groups"][0]["periods"]
    (home.root / "settings.yaml").unlink()

    table = udf("experiments", "list")
    assert table.exit_code == 0 and "2026-01-05" in table.stdout
    shown = udf("experiments", "show", "exp", "--format", "json")
    assert json.loads(shown.stdout)[0]["experiment"] == "exp"
    missing = udf("experiments", "show", "nope")
    assert missing.exit_code == 1 and "no experiment named 'nope'" in missing.stderr


def test_import_from_stdin(home) -> None:
    result = udf("ramps", "import", "-", "--format", "json", input=HEADER + f"e1,control,{T0},50\n")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["file"], summary["ramps_added"], summary["changed"]) == ("<stdin>", 1, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"exp,grp,ts,alloc\ne,control,{T0},5\n", "line 1: bad header"),
        (HEADER + f"e,control,{T0},5\ne,treatment,soon,5\n", "line 3: ramp_ts 'soon' is not"),
        (HEADER + f"e,control,{T0},5\ne,treatment,{T0},250\n", "line 3: allocation '250'"),
    ],
)
def test_a_bad_file_is_rejected_whole(home, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ramps.csv"
    path.write_text(text)
    result = udf("ramps", "import", str(path))
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one clear line
    listed = udf("experiments", "list", "--format", "json")
    assert json.loads(listed.stdout) == []  # the good first row was not written either


def test_missing_file(home) -> None:
    result = udf("ramps", "import", "/nonexistent/ramps.csv")
    assert result.exit_code == 1 and "cannot read /nonexistent/ramps.csv" in result.stderr


def test_db_commands(home) -> None:
    assert "empty database" in udf("db", "current").stdout
    head = HEAD_REVISION
    assert f"migrated from an empty database to revision {head}" in udf("db", "migrate").stdout
    assert udf("db", "current").stdout.strip() == f"{head} (head)"
    assert f"already at revision {head}" in udf("db", "migrate").stdout
    assert "downgraded to base" in udf("db", "downgrade", "base", "--yes").stdout
    assert "empty database" in udf("db", "current").stdout
    bad = udf("db", "downgrade", "nope", "--yes")
    assert bad.exit_code == 1 and "cannot downgrade to 'nope'" in bad.stderr


def test_ramps_import_on_every_backend(home, store_factory, store_url, monkeypatch) -> None:
    monkeypatch.setenv("UDF_METADATA_URL", store_url)
    assert udf("ramps", "import", str(CONTRACT_RAMPS)).exit_code == 0
    again = udf("ramps", "import", str(CONTRACT_RAMPS))
    assert "nothing changed" in again.stdout
    (exp,) = store_factory().experiments()
    assert [len(g.periods(3 * DAY)) for g in exp.groups] == [2, 2]


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return lines[0]


def test_an_out_of_range_ramp_ts_is_one_error_line(home, tmp_path: Path) -> None:
    path = tmp_path / "ramps.csv"
    path.write_text(HEADER + f"e,control,{T0},5\ne,treatment,999999999999999999,5\n")
    line = _one_error_line(udf("ramps", "import", str(path)))
    assert "line 3: ramp_ts '999999999999999999' is not epoch milliseconds" in line
    listed = udf("experiments", "list")  # nothing imported, and listing still works
    assert listed.exit_code == 0, listed.output


def test_experiments_list_survives_a_period_ending_after_9999(home) -> None:
    # A ramp stored before imports were bounded to 2099 (this one is just before the year
    # 10000) opens a period ending after the year 9999: listing showed a traceback.
    from metadata.records import RampRow
    from metadata.repository import MetadataStore

    with MetadataStore.for_home(home) as store:
        store.import_ramps([RampRow("late", "control", 253_402_300_799_999, 5.0)])
    listed = udf("experiments", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    (period,) = json.loads(listed.stdout)[0]["groups"][0]["periods"]
    assert (period["start_utc"], period["end_utc"]) == ("9999-12-31T23:59:59.999000Z", None)
    table = udf("experiments", "list")
    assert table.exit_code == 0 and "after 9999" in table.stdout


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql://postgres:s3cret@127.0.0.1:1/udf", id="postgres"),
        pytest.param("mysql://root:s3cret@127.0.0.1:1/udf", id="mariadb"),
    ],
)
def test_an_unreachable_database_is_one_error_line(home, tmp_path, monkeypatch, url) -> None:
    monkeypatch.setenv("UDF_METADATA_URL", url)
    path = tmp_path / "ramps.csv"
    path.write_text(HEADER + f"e,control,{T0},5\n")
    for args in (("ramps", "import", str(path)), ("experiments", "list"), ("db", "current")):
        line = _one_error_line(udf(*args))
        assert "127.0.0.1:1/udf" in line and "s3cret" not in line, line
        assert "[SQL" not in line and "sqlalche.me" not in line
