"""The versioned results schema: rows round-trip, slices refuse what is not theirs."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import date

import pytest

from results.schema import (
    COLUMNS,
    FLOAT_COLUMNS,
    INTEGER_COLUMNS,
    KEY,
    SCHEMA_VERSION,
    STRING_COLUMNS,
    ResultRow,
    Slice,
)
from results.stores.base import checked_rows, sort_rows
from tests.support.result_rows import DAY, make_row, slice_of, treatment
from udf.errors import InputError


@pytest.mark.parametrize("row", [make_row(), treatment(), treatment(status="zero_variance")])
def test_to_dict_from_dict_round_trip(row: ResultRow) -> None:
    data = row.to_dict()
    assert tuple(data) == COLUMNS
    assert ResultRow.from_dict(data) == row
    assert ResultRow.from_dict(json.loads(json.dumps(data))) == row


def test_columns_are_typed_once() -> None:
    assert set(COLUMNS) == INTEGER_COLUMNS | FLOAT_COLUMNS | STRING_COLUMNS
    assert not (INTEGER_COLUMNS & FLOAT_COLUMNS or FLOAT_COLUMNS & STRING_COLUMNS)
    assert set(KEY) <= set(COLUMNS)
    assert make_row().schema_version == SCHEMA_VERSION


def test_from_dict_refuses_unknown_columns() -> None:
    data = make_row().to_dict() | {"colour": "blue"}
    with pytest.raises(InputError, match="unknown result columns: colour"):
        ResultRow.from_dict(data)


@pytest.mark.parametrize(
    "change",
    [
        {"source": "stream"},
        {"metric_type": "calendar_day"},
        {"date": "2026-01-03"},
        {"metric": "search"},
        {"experiment": "other"},
    ],
    ids=["source", "metric_type", "date", "metric", "experiment"],
)
def test_slice_check_refuses_a_row_of_another_slice(change: dict[str, str]) -> None:
    piece = slice_of(("click",), experiments=("exp",))
    with pytest.raises(InputError, match="outside the slice"):
        piece.check([make_row(), make_row(group="treatment", **change)])


def test_slice_check_refuses_a_repeated_key() -> None:
    with pytest.raises(InputError, match="appears twice"):
        slice_of().check([make_row(), make_row(volume=99)])


def test_slice_check_keeps_rows_that_differ_in_any_key_column() -> None:
    rows = [make_row(), make_row(day_in=1), make_row(segment="country", segment_value="DE"),
            make_row(period_start=5), make_row(group="treatment")]  # fmt: skip
    assert slice_of().check(rows) == rows


def test_slice_needs_a_known_source_and_a_metric() -> None:
    with pytest.raises(InputError, match="unknown results source"):
        Slice("nightly", "aggregated", DAY, ("click",))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least one metric"):
        Slice("batch", "aggregated", DAY, ())


def test_slice_without_experiments_covers_every_experiment() -> None:
    piece = Slice("batch", "aggregated", date(2026, 1, 2), ("click",))
    assert piece.contains(make_row(experiment="a")) and piece.contains(make_row(experiment="b"))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_stores_refuse_non_finite_numbers(value: float) -> None:
    with pytest.raises(InputError, match="not a finite number"):
        checked_rows(slice_of(), [treatment(p_value=value)])


def test_stores_refuse_text_longer_than_the_columns() -> None:
    checked_rows(slice_of(), [make_row(segment="s", segment_value="v" * 255)])
    with pytest.raises(InputError, match="segment_value is longer than 255"):
        checked_rows(slice_of(), [make_row(segment="s", segment_value="v" * 256)])
    long = "m" * 129
    with pytest.raises(InputError, match="metric is longer than 128"):
        checked_rows(slice_of((long,)), [make_row(metric=long)])


def test_rows_sort_by_key() -> None:
    rows = [make_row(group="treatment"), make_row(experiment="a"), replace(make_row(), day_in=2)]
    assert [r.key() for r in sort_rows(rows)] == sorted(r.key() for r in rows)


def test_updated_is_dataclasses_replace() -> None:
    row = treatment()
    changes = {"p_value": 0.25, "status": "zero_variance", "health": "srm", "srm_p_value": 1e-9}
    assert row.updated(changes) == replace(row, **changes)
    assert row.updated({}) == row
    assert row.p_value != 0.25  # the original is unchanged
    with pytest.raises(TypeError, match="no field 'pvalue'"):
        row.updated({"pvalue": 0.1})


def test_finite_values_whose_sum_overflows_are_stored_and_the_bad_column_is_named() -> None:
    huge = make_row(sum=1e308, sum_sq=1e308, den_sum=1e308)  # finite; their sum is not
    assert checked_rows(slice_of(), [huge]) == [huge]
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(InputError, match=f"sum_xy is {bad}, not a finite number"):
            checked_rows(slice_of(), [make_row(sum_xy=bad)])
