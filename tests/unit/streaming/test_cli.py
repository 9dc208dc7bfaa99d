"""``udf stream``: clear one-line errors before any Flink starts."""

from __future__ import annotations

import fcntl

from click.testing import CliRunner

from udf.cli import main
from udf.home import Home


def test_an_empty_archive_is_a_clear_error(home: Home) -> None:
    result = CliRunner().invoke(main, ["--home", str(home.root), "stream", "replay"])
    assert result.exit_code == 1
    assert "holds no records: import data first" in result.output
    assert "Traceback" not in result.output


def test_a_second_pipeline_in_the_same_home_and_mode_is_refused(home: Home) -> None:
    lock = home.root / "stream" / "replay.lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = CliRunner().invoke(main, ["--home", str(home.root), "stream", "replay"])
    assert result.exit_code == 1
    assert "another `udf stream replay` is running" in result.output
