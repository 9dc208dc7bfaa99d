"""Parsing ramps CSV files: all or nothing, with line numbers."""

from __future__ import annotations

import pytest

from metadata import ramps_csv
from metadata.ramps_csv import parse_ramps
from metadata.records import RampRow
from udf.errors import InputError
from udf.times import TS_MAX, TS_MIN

HEADER = "experiment,group,ramp_ts,allocation\n"


def test_good_file() -> None:
    text = "\ufeff" + HEADER + "exp,control,1767225600000,5\n\nexp,treatment,1767225600000,12.5\n"
    assert parse_ramps(text.splitlines(keepends=True)) == [
        RampRow("exp", "control", 1767225600000, 5.0),
        RampRow("exp", "treatment", 1767225600000, 12.5),
    ]


def test_identical_duplicate_rows_collapse() -> None:
    rows = parse_ramps([HEADER, "e,control,1767225600001,5\n", "e,control,1767225600001,5.0\n"])
    assert rows == [RampRow("e", "control", 1767225600001, 5.0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("experiment,group,ts,allocation\n", "line 1: bad header"),
        ("experiment,group,ramp_ts\n", "line 1: bad header"),
    ],
)
def test_bad_header(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_ramps(text.splitlines(keepends=True), "r.csv")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("e,control,abc,5", "line 3: ramp_ts 'abc' is not"),
        ("e,control,-5,5", "line 3: ramp_ts '-5'"),
        ("e,control,1.5,5", "line 3: ramp_ts '1.5'"),
        # Past the year 9999: stored, it made every 'udf experiments list' crash.
        ("e,control,253402300800000,5", "line 3: ramp_ts '253402300800000' is not epoch"),
        # Outside the accepted times (udf.times): 1970 and year 3000.
        ("e,control,0,5", "line 3: ramp_ts '0' is not epoch milliseconds in the accepted times"),
        ("e,control,32503680000000,5", "line 3: ramp_ts '32503680000000'"),
        ("e,control,999999999999999999,5", "line 3: ramp_ts '999999999999999999'"),
        ("e,control,\u0661\u0662\u0663,5", "line 3: ramp_ts '\u0661\u0662\u0663'"),  # Arabic-Indic
        ("e,control,1767225600001,\u0665", "line 3: allocation '\u0665' is not a number"),
        ("e,control,1767225600001,1_0", "line 3: allocation '1_0' is not a number"),
        ("e,control,1767225600001,lots", "line 3: allocation 'lots' is not a number"),
        ("e,control,1767225600001,0", r"line 3: allocation '0' must be a percentage in \(0, 100\]"),
        ("e,control,1767225600001,101", "line 3: allocation '101'"),
        ("e,control,1767225600001,nan", "line 3: allocation 'nan'"),
        ("e,control,1767225600001", "line 3: expected 4 fields"),
        ("e,control,1767225600001,5,extra", "line 3: expected 4 fields"),
        (",control,1767225600001,5", "line 3: experiment '' must be"),
        ("e,a b,1767225600001,5", "line 3: group 'a b' must be"),
        (
            "e,control,1767225600002,6",
            "line 3: e/control at 1767225600002 has allocation 6, but line 2 says 5",
        ),
    ],
)
def test_bad_row_names_its_line(row: str, message: str) -> None:
    lines = [HEADER, "e,control,1767225600002,5\n", row + "\n"]
    with pytest.raises(InputError, match=message) as info:
        parse_ramps(lines, "r.csv")
    assert str(info.value).startswith("r.csv line 3:")
    assert "nothing imported" in str(info.value)


def test_every_bad_row_is_reported_at_once() -> None:
    lines = [
        HEADER,
        "e,control,x,5\n",
        "e,control,1767225600001,5\n",
        "e,control,1767225600002,0\n",
    ]
    with pytest.raises(InputError) as info:
        parse_ramps(lines, "r.csv")
    assert "2 bad rows" in str(info.value)
    assert "line 2:" in str(info.value) and "line 4:" in str(info.value)


def test_ramp_ts_bounds() -> None:
    top = TS_MAX - 1  # 2099-12-31T23:59:59.999Z
    rows = parse_ramps([HEADER, f"e,control,{TS_MIN},5\n", f"e,control,{top},5\n"])
    assert [r.ramp_ts for r in rows] == [TS_MIN, top]
    with pytest.raises(InputError, match=f"from {TS_MIN} to {top}"):
        parse_ramps([HEADER, f"e,control,{TS_MAX},5\n"])
    with pytest.raises(InputError, match=f"from {TS_MIN} to {top}"):
        parse_ramps([HEADER, f"e,control,{TS_MIN - 1},5\n"])


def test_patterns_match_whole_ascii_values() -> None:
    # fullmatch, not "$" (which also matches before a trailing newline), and [0-9], not \d.
    assert ramps_csv._NAME.fullmatch("exp_1.a-b")
    assert not ramps_csv._NAME.fullmatch("exp\n")
    assert not ramps_csv._INT.fullmatch("12\n")
    assert not ramps_csv._INT.fullmatch("\u0661\u0662")
    assert ramps_csv._NUMBER.fullmatch("12.5") and ramps_csv._NUMBER.fullmatch("1e1")
