"""``udf results export`` and ``udf results show`` on the embedded store of a test home."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from results.schema import COLUMNS, ResultRow
from results.stores.embedded import EmbeddedResultsStore
from tests.support.result_rows import DAY, slice_of, slice_rows
from udf.cli import main
from udf.home import Home

NEXT = DAY + timedelta(days=1)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def stored(home: Home, monkeypatch: pytest.MonkeyPatch) -> list[ResultRow]:
    """Batch rows on two days and two types, stream rows on one day, in the home's store."""
    for name in ("UDF_RESULTS_STORE", "UDF_RESULTS_URL"):
        monkeypatch.delenv(name, raising=False)
    rows = []
    with EmbeddedResultsStore(f"sqlite:///{home.root / 'results.db'}") as store:
        for piece, written in [
            (slice_of(("click", "search")), slice_rows(("click", "search"))),
            (slice_of(day=NEXT), slice_rows(date=NEXT.isoformat())),
            (slice_of(metric_type="days_in"), slice_rows(metric_type="days_in", day_in=1)),
            (slice_of(source="stream"), slice_rows(source="stream")),
        ]:
            store.replace(piece, written)
            rows += written
    return sorted(rows, key=ResultRow.key)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_export_writes_every_column_of_every_row(stored: list[ResultRow], tmp_path: Path) -> None:
    out = tmp_path / "batch.jsonl"
    result = run("results", "export", "--source", "batch", "--output", str(out))
    assert result.exit_code == 0, result.output
    exported = read_jsonl(out)
    assert exported == [r.to_dict() for r in stored if r.source == "batch"]
    assert all(tuple(obj) == COLUMNS for obj in exported)
    assert result.stderr == f"exported 8 batch result rows to {out}\n"
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.jsonl", "home"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_export_filters_by_type_and_dates(stored: list[ResultRow], tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    args = ["results", "export", "--source", "batch", "--metric-type", "aggregated"]
    assert run(*args, "--date-from", NEXT.isoformat(), "--output", str(out)).exit_code == 0
    assert {o["date"] for o in read_jsonl(out)} == {NEXT.isoformat()}
    assert run(*args, "--date-to", DAY.isoformat(), "--output", str(out)).exit_code == 0
    assert {(o["date"], o["metric_type"]) for o in read_jsonl(out)} == {
        (DAY.isoformat(), "aggregated")
    }
    assert len(read_jsonl(out)) == 4


def test_export_to_stdout(stored: list[ResultRow]) -> None:
    result = run("results", "export", "--source", "stream", "--output", "-")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [ResultRow.from_dict(json.loads(line)) for line in lines] == [
        r for r in stored if r.source == "stream"
    ]
    assert result.stderr == "exported 2 stream result rows to -\n"


def test_an_interrupted_export_leaves_nothing_behind(
    stored: list[ResultRow], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.jsonl").write_text("old export\n")
    calls = {"n": 0}
    original = ResultRow.to_dict

    def failing(row: ResultRow) -> dict:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return original(row)

    monkeypatch.setattr(ResultRow, "to_dict", failing)
    result = run("results", "export", "--source", "batch", "--output", str(out / "keep.jsonl"))
    assert result.exit_code == 1
    assert result.output.strip() == "error: No space left on device"
    assert [p.name for p in out.iterdir()] == ["keep.jsonl"]
    assert (out / "keep.jsonl").read_text() == "old export\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nightly", "--output", "-"], "nightly"),
        (["--source", "batch"], "--output"),
        (["--source", "batch", "--date-from", "2026-13-01", "--output", "-"], "2026-13-01"),
    ],
)
def test_bad_arguments_are_usage_errors(
    stored: list[ResultRow], args: list[str], message: str
) -> None:
    result = run("results", "export", *args)
    assert result.exit_code == 2 and message in result.output


def test_dates_in_the_wrong_order_are_one_line(stored: list[ResultRow]) -> None:
    result = run("results", "export", "--source", "batch", "--date-from", "2026-01-05",
                 "--date-to", "2026-01-01", "--output", "-")  # fmt: skip
    assert result.exit_code == 1
    assert result.output == "error: --date-from 2026-01-05 is after --date-to 2026-01-01\n"


def test_a_missing_output_directory_is_one_line(stored: list[ResultRow], tmp_path: Path) -> None:
    result = run(
        "results", "export", "--source", "batch", "--output", str(tmp_path / "no" / "x.jsonl")
    )
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("error: ") and "No such file or directory" in line


def test_show_as_a_table_and_as_json(stored: list[ResultRow]) -> None:
    table = run("results", "show", "--source", "batch", "--metric", "search", "--limit", "1")
    assert table.exit_code == 0, table.output
    assert "1 of 2 result rows" in table.stdout and "search" in table.stdout
    assert "p_value" in table.stdout
    shown = run(
        "results", "show", "--experiment", "exp", "--metric-type", "days_in", "--format", "json"
    )
    assert shown.exit_code == 0, shown.output
    assert [ResultRow.from_dict(o) for o in json.loads(shown.stdout)] == [
        r for r in stored if r.metric_type == "days_in"
    ]
    empty = run(
        "results", "show", "--date-from", (date(2030, 1, 1)).isoformat(), "--format", "json"
    )
    assert json.loads(empty.stdout) == []


# --output that is not a plain path: the export replaced whatever was there with a regular
# file (a link, a FIFO its reader then waited on forever, even /dev/null as root).


def test_export_through_a_link_writes_its_target(stored: list[ResultRow], tmp_path: Path) -> None:
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    result = run("results", "export", "--source", "batch", "--output", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.readlink() == target
    assert read_jsonl(target) == [r.to_dict() for r in stored if r.source == "batch"]
    assert target.stat().st_mode & 0o777 == 0o640  # the file it replaced keeps its mode


def test_export_streams_to_a_fifo(stored: list[ResultRow], tmp_path: Path) -> None:
    import stat
    import threading

    fifo = tmp_path / "results.pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(
        target=lambda: received.append(fifo.read_text(encoding="utf-8")), daemon=True
    )
    reader.start()
    result = run("results", "export", "--source", "stream", "--output", str(fifo))
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert not reader.is_alive()  # the reader got its data and the end of it
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    lines = received[0].splitlines()
    assert [json.loads(line) for line in lines] == [
        r.to_dict() for r in stored if r.source == "stream"
    ]


def test_export_streams_to_a_device(stored: list[ResultRow], tmp_path: Path) -> None:
    import stat

    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except PermissionError:
        pytest.skip("creating a device file needs CAP_MKNOD")
    result = run("results", "export", "--source", "batch", "--output", str(null))
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(null.stat().st_mode)


def test_export_refuses_a_directory_or_a_socket(stored: list[ResultRow], tmp_path: Path) -> None:
    import socket

    refused = run("results", "export", "--source", "batch", "--output", str(tmp_path))
    assert refused.exit_code == 1
    assert (
        refused.stderr
        == f"error: --output {tmp_path} is a directory: give a file path (or - for stdout)\n"
    )
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        refused = run("results", "export", "--source", "batch", "--output", str(path))
    assert refused.exit_code == 1 and "is a socket" in refused.stderr
    assert path.is_socket()
