"""Closed-hour markers: parsed, atomic, never moving backwards without --force."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from udf.archive.seal import CLOSED_FILE, closed_through, parse_through, seal
from udf.cli import main
from udf.errors import ArchiveError, InputError


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_through_a_day_closes_its_last_hour_and_through_an_hour_that_hour() -> None:
    assert parse_through("2026-01-03") == ms(2026, 1, 4)
    assert parse_through("2026-01-03T05") == ms(2026, 1, 3, 6)
    assert parse_through("2026-01-03T23") == ms(2026, 1, 4)
    for bad in ("2026-01-32", "2026-01-03T24", "yesterday", "2026-01-03T5", ""):
        with pytest.raises(InputError):
            parse_through(bad)


def test_the_marker_moves_forward_only_unless_forced(tmp_path) -> None:
    archive = tmp_path / "archive"
    assert closed_through(archive, "events") is None
    first = seal(archive, "events", ms(2026, 1, 4))
    assert (first.previous_ms, first.closed_through_ms, first.changed) == (
        None,
        ms(2026, 1, 4),
        True,
    )
    assert seal(archive, "events", ms(2026, 1, 4)).changed is False
    with pytest.raises(InputError, match="needs --force"):
        seal(archive, "events", ms(2026, 1, 3))
    assert closed_through(archive, "events") == ms(2026, 1, 4)
    back = seal(archive, "events", ms(2026, 1, 3), force=True)
    assert (back.previous_ms, back.closed_through_ms) == (ms(2026, 1, 4), ms(2026, 1, 3))
    assert closed_through(archive, "activations") is None  # per topic
    stored = json.loads((archive / "events" / CLOSED_FILE).read_text())
    assert stored["closed_through"] == "2026-01-03T00:00:00+00:00"
    assert [p.name for p in (archive / "events").iterdir() if p.name.endswith(".tmp")] == []


def test_a_corrupt_marker_is_an_error_not_a_guess(tmp_path) -> None:
    archive = tmp_path / "archive"
    (archive / "events").mkdir(parents=True)
    (archive / "events" / CLOSED_FILE).write_text("{not json")
    with pytest.raises(ArchiveError, match="unreadable"):
        closed_through(archive, "events")


def test_udf_data_seal(home) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["data", "seal", "--topic", "events", "--through", "2026-01-03T05"])
    assert ok.exit_code == 0, ok.output
    assert "sealed through 2026-01-03T06:00Z" in ok.output
    back = runner.invoke(main, ["data", "seal", "--topic", "events", "--through", "2026-01-02"])
    assert back.exit_code == 1 and "needs --force" in back.output
    forced = runner.invoke(
        main,
        [
            "data",
            "seal",
            "--topic",
            "events",
            "--through",
            "2026-01-02",
            "--force",
            "--format",
            "json",
        ],
    )
    assert forced.exit_code == 0
    assert json.loads(forced.output)[0]["closed_through_ms"] == ms(2026, 1, 3)
    bad = runner.invoke(main, ["data", "seal", "--topic", "clicks", "--through", "2026-01-02"])
    assert bad.exit_code == 2
