"""Bad input and damaged files, as a hostile user tries them: one clear line, nothing half-done.

Each test names the old failure it reproduces (a traceback, a silent acceptance, a lost file).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from metadata.repository import MetadataStore
from tests.conftest import CONTRACT_EXAMPLES
from udf.cli import main
from udf.home import Home

HEADER = "experiment,group,ramp_ts,allocation\n"
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
DAY = 86_400_000


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def one_error_line(result: Result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output
    return line


# -- item 4: tracebacks where one line is promised ---------------------------------------------


def test_a_damaged_metadata_page_is_one_line(home: Home) -> None:
    # A damaged page of the experiments table gave a 96-line SQLAlchemy traceback.
    assert run("ramps", "import", str(CONTRACT_EXAMPLES / "ramps.csv")).exit_code == 0
    with sqlite3.connect(home.metadata_db) as db:
        [root] = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'experiments'"
        ).fetchone()
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    with home.metadata_db.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xde\xad\xbe\xef" * (page_size // 4))
    line = one_error_line(run("experiments", "list"))
    assert line == "error: metadata store error: database disk image is malformed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backfill", "--metric-type", "aggregated", "--from", "0001-01-01", "--to", "9999-12-31"],
         "error: --from 0001-01-01 is outside the accepted dates, 2000-01-01 to 2099-12-31 UTC"),
        (["data", "seal", "--topic", "events", "--through", "9999-12-31"],
         "error: --through 9999-12-31 is outside the accepted dates, 2000-01-01 to 2099-12-31 UTC"),
        (["generate", "--start", "9999-12-25"],
         "error: --start 9999-12-25 is outside the accepted dates, 2000-01-01 to 2099-12-31 UTC"),
        (["generate", "--start", "2099-12-28"],
         "error: --start 2099-12-28 with --days 8 runs past 2099-12-31, the last accepted date"),
    ],
)  # fmt: skip
def test_extreme_dates_are_refused_clearly(home: Home, args: list[str], message: str) -> None:
    # Each overflowed Python's dates with a traceback (OverflowError, "year 10000 is out of range").
    assert one_error_line(run(*args)).startswith(message)


@pytest.mark.parametrize("days", ["nan", "inf", "1e-9", "-1"])
def test_a_senseless_window_is_a_usage_error(home: Home, days: str) -> None:
    # With experiments present, nan and inf crashed converting to ms and 1e-9 became 0 ms.
    assert run("ramps", "import", str(CONTRACT_EXAMPLES / "ramps.csv")).exit_code == 0
    result = run("experiments", "list", "--window-days", days)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        "Invalid value for '--window-days': the aggregation window must be from 1 hour"
        in result.stderr
    )
    assert run("experiments", "list", "--window-days", "0.5").exit_code == 0


def test_a_senseless_window_setting_is_a_config_error(home: Home) -> None:
    (home.root / "settings.yaml").write_text("window_days: .inf\n")
    result = run("results", "show")  # any command that loads the settings
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == (
        f"error: 1 config error:\n  {home.root / 'settings.yaml'}: window_days: the aggregation "
        "window must be from 1 hour (0.0416667 days) to 3650 days, not inf days\n"
    )


# -- item 5: a typo in a date ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "reason"),
    [
        ("2026-01-01", "2099-12-31", "--to 2099-12-31 is in the future (today is "),
        ("2000-01-01", "2025-12-31", "--from 2000-01-01 --to 2025-12-31 covers 9,497 days; "
                                     "one backfill covers at most 366"),
        ("2026-01-05", "2026-01-01", "--to 2026-01-01 is before --from 2026-01-05"),
    ],
)  # fmt: skip
def test_a_backfill_range_that_cannot_be_meant_is_refused(
    home: Home, first: str, last: str, reason: str
) -> None:
    # `--from 2026-01-01 --to 9999-12-31` ran for over 10 minutes and wrote 31,977 runs.
    result = run("backfill", "--metric-type", "aggregated", "--from", first, "--to", last)
    assert one_error_line(result).startswith(f"error: {reason}")
    with MetadataStore.for_home(home) as store:
        assert store.runs() == []  # nothing was planned or recorded


# -- item 7: smaller findings ------------------------------------------------------------------


def test_times_outside_the_accepted_range_are_dead_lettered(home: Home, tmp_path: Path) -> None:
    # ts 0 and year 3000 were archived as dt=1970-01-01 and dt=3000-01-01.
    source = tmp_path / "events.jsonl"
    source.write_text(
        '{"user_id": 1, "event_type": "a", "ts": 0}\n'
        '{"user_id": 1, "event_type": "a", "ts": 32503680000000}\n'
        f'{{"user_id": 1, "event_type": "a", "ts": {T0}}}\n'
    )
    result = run("data", "import", "--topic", "events", str(source), "--format", "json")
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert (report["records"], report["corrupt"], report["corrupt_by_kind"]) == (
        1,
        2,
        {"out_of_range": 2},
    )
    assert sorted(p.name for p in (home.archive / "events").glob("dt=*")) == ["dt=2026-01-01"]


def test_a_falling_ramp_is_refused_and_nothing_is_imported(home: Home, tmp_path: Path) -> None:
    # A ramp from 50% down to 20% was accepted silently; ramps are increases (contract §2).
    first = tmp_path / "first.csv"
    first.write_text(HEADER + f"e,control,{T0},50\ne,treatment,{T0},50\n")
    assert run("ramps", "import", str(first)).exit_code == 0
    later = tmp_path / "later.csv"
    later.write_text(HEADER + f"e,control,{T0 + DAY},60\ne,treatment,{T0 + DAY},20\n")
    line = one_error_line(run("ramps", "import", str(later)))
    assert line == (
        "error: e/treatment: allocation falls from 50% at 2026-01-01T00:00Z to 20% at "
        "2026-01-02T00:00Z: a ramp only increases a group's allocation (the contract §2); "
        "nothing imported"
    )
    with MetadataStore.for_home(home) as store:
        [exp] = store.experiments()
    assert {g.name: [r.allocation for r in g.ramps] for g in exp.groups} == {
        "control": [50.0],
        "treatment": [50.0],
    }  # the control's good row of the refused file was not written either


def test_an_experiment_without_a_control_group_is_imported_with_a_warning(
    home: Home, tmp_path: Path
) -> None:
    # It was accepted silently, and its groups were never compared.
    path = tmp_path / "ramps.csv"
    path.write_text(HEADER + f"e,a,{T0},50\ne,b,{T0},50\n")
    result = run("ramps", "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "warning: experiment e has no group named 'control': its groups are shown without a "
        "comparison (no lift, interval or p-value) until a control is imported\n"
    )
    as_json = run("ramps", "import", str(path), "--format", "json")
    assert json.loads(as_json.stdout)["without_control"] == ["e"]
    control = tmp_path / "control.csv"
    control.write_text(HEADER + f"e,control,{T0},50\n")
    assert run("ramps", "import", str(control)).stderr == ""


def test_validating_an_empty_folder_says_so(tmp_path: Path) -> None:
    # It printed nothing and exited 0.
    (tmp_path / "catalog").mkdir()
    result = run("config", "validate", str(tmp_path / "catalog"))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: 1 config error:\n  {tmp_path / 'catalog'}: no catalog files (*.yaml, *.yml) in this directory\n"
    )


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["experiments", "show", "nosuch"], 1,
         {"type": "input", "message": "no experiment named 'nosuch'; import its ramps first"}),
        (["data", "import", "--topic", "events"], 2,
         {"type": "usage", "message": "Missing argument 'FILES...'."}),
        (["experiments", "list", "--window-days", "nan"], 2, None),
    ],
)  # fmt: skip
def test_errors_are_json_under_format_json(
    home: Home, args: list[str], code: int, error: dict | None
) -> None:
    # --format json printed errors as text.
    result = run(*args, "--format", "json")
    assert result.exit_code == code
    assert result.stdout == ""
    printed = json.loads(result.stderr)
    assert printed["exit_code"] == code
    if error is not None:
        assert printed["error"] == error
    else:
        assert (
            printed["error"]["type"] == "usage" and "--window-days" in printed["error"]["message"]
        )


def test_config_errors_are_json_with_every_issue(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "metrics:\n  - name: m\n    type: aggregated\n    colour: red\n"
    )
    (tmp_path / "b.yaml").write_text("experiments:\n  - experiment: e\n    metrics: [m]\n")
    result = run("config", "validate", str(tmp_path), "--format", "json")
    assert result.exit_code == 1
    error = json.loads(result.stderr)["error"]
    assert error["type"] == "config" and error["message"] == "2 config errors"
    assert [(Path(i["file"]).name, i["field"], i["message"]) for i in error["issues"]] == [
        ("a.yaml", "metrics[0] (m).colour", "unknown key"),
        (
            "b.yaml",
            "experiments[0] (e).metrics[0]",
            f"metric 'm' is defined in {tmp_path / 'a.yaml'}, which has errors",
        ),
    ]


def test_usage_errors_exit_2_and_errors_exit_1(home: Home) -> None:
    # docs/getting-started.md said every bad input exits 1; click exits 2 on usage errors.
    # The docs now say what the code does: 1 for errors, 2 for usage errors.
    assert run("data", "import", "--topci", "events", "x").exit_code == 2
    assert run("no-such-command").exit_code == 2
    assert run("data", "import", "--topic", "events", "/no/such/file").exit_code == 1


def test_a_truncated_metadata_database_is_refused(home: Home) -> None:
    # A metadata.db cut to 0 bytes silently became a new, empty database.
    home.metadata_db.write_bytes(b"")
    line = one_error_line(run("experiments", "list"))
    assert line == (
        f"error: {home.metadata_db} is empty (0 bytes): it is not a database but a truncated "
        "one; restore it from a backup, or delete it to start with an empty store"
    )
    assert home.metadata_db.stat().st_size == 0  # left for the user to restore
    home.metadata_db.unlink()
    assert run("experiments", "list").exit_code == 0  # a missing one is created, whole
    assert home.metadata_db.stat().st_size > 0


def test_downgrading_asks_first(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    # `udf db downgrade base` dropped every table without asking.
    assert run("ramps", "import", str(CONTRACT_EXAMPLES / "ramps.csv")).exit_code == 0
    line = one_error_line(run("db", "downgrade", "base"))  # no terminal to ask on
    assert (
        line
        == "error: downgrading to base drops every table and all metadata: pass --yes to confirm"
    )
    monkeypatch.setattr("udf.cli.db._interactive", lambda: True)
    declined = run("db", "downgrade", "base", input="n\n")
    assert (
        declined.exit_code == 1
        and "drops every table and all metadata. Continue?" in declined.output
    )
    with MetadataStore.for_home(home) as store:
        assert [e.name for e in store.experiments()] == ["exp"]  # still there
    assert run("db", "downgrade", "base", input="y\n").exit_code == 0
    assert "empty database" in run("db", "current").stdout


def test_a_killed_generate_leaves_no_staging_behind(home: Home, tmp_path: Path) -> None:
    # A killed `udf generate` left .out.partial-PID folders that later runs kept forever.
    out = tmp_path / "w"
    abandoned = tmp_path / ".w.partial-999999"
    (abandoned / "events").mkdir(parents=True)
    (abandoned / "events" / "events-2026-01-01.jsonl").write_text("{}\n")
    live = tmp_path / ".w.partial-4242"  # a run writing right now holds its lock: kept
    live.mkdir()
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = run("generate", "--out", str(out), "--events", "2000", "--users", "200",
                     "--spammers", "0", "--days", "5", "--format", "json")  # fmt: skip
    finally:
        os.close(fd)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".w.partial-4242", "home", "w"]
