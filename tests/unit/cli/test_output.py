"""Tables show every value whole: never cut to "aggrega…", on a terminal or in a pipe."""

from __future__ import annotations

import re

import pytest

from udf.cli.output import emit

LONG = "custom metric 'bad' failed in Spark: [CAST_INVALID_INPUT] The value 'click' cannot be cast"
ROWS = [
    {"metric": "click_through_rate", "type": "aggregated", "experiment": "exp_626d7812",
     "dag run": "udf_compute__2026-12-02T17:29:48", "reason": LONG},
    {"metric": "clicks", "type": "aggregated", "experiment": "exp_626d7812",
     "dag run": "scheduled__2026-01-05T00:00:00+00:00", "reason": "computed in a batch of 4"},
]  # fmt: skip


def test_off_a_terminal_each_row_is_one_whole_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")  # what a narrow terminal would say
    emit(ROWS, "table", title="runs")
    out = capsys.readouterr().out
    assert "…" not in out
    for row in ROWS:
        [line] = [x for x in out.splitlines() if f" {row['metric']} " in x]
        for value in row.values():
            assert f" {value} " in line


@pytest.mark.parametrize("width", [60, 100, 140])
def test_on_a_terminal_cells_wrap_or_records_and_nothing_is_cut(
    width: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", str(width))
    emit(ROWS, "table", title="runs")
    out = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # styles, as a terminal shows
    assert "…" not in out
    assert all(len(line) <= width for line in out.splitlines())
    # Identifiers are never broken across lines; texts may wrap, but every word is there.
    for row in ROWS:
        for value in (row["metric"], row["type"], row["experiment"], row["dag run"]):
            assert value in out
        words = re.sub(r"[│┃|]", " ", out).split()
        assert all(word in words for word in row["reason"].split())
    if width == 60:  # the table cannot fit: one record per block, every column named
        assert out.count("record ") == 2 and re.search(r"^reason +custom metric", out, re.M)


def test_a_title_wider_than_its_table_is_one_line_above_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    title = "udf stream replay: finished, 1,020 rows written in 20.6 s [per topic]"
    emit([{"topic": "events", "late": 0}], "table", title=title)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].strip() == title  # whole, and as written (brackets are not markup)
    assert lines[1].startswith("┏")  # the table follows
