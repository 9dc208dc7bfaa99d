"""The Druid SQL the Druid results store sends: literals, the REPLACE statement, reads.

A slice is part of one day, and Druid replaces whole time chunks: ``OVERWRITE WHERE`` may
filter only ``__time`` (and must align with ``PARTITIONED BY DAY``). So a write rewrites the
slice's whole day. SQL-based ingestion (MSQ) plans ``UNION ALL`` only as a union of plain
table reads, so the day's other rows cannot be read from the datasource and unioned with the
new rows inside the statement: the store reads them first with a plain SELECT
(:func:`select_statement` with ``exclude``), merges them with the new rows in the client and
sends every row of the day inline, in one statement that reads nothing but its EXTERN::

    REPLACE INTO "udf_results"
    OVERWRITE WHERE "__time" >= TIMESTAMP '2026-01-02 00:00:00'
                AND "__time" < TIMESTAMP '2026-01-03 00:00:00'
    SELECT TIME_PARSE("date") AS "__time", "experiment", ...
    FROM TABLE(EXTERN('{"type":"inline","data":"<JSONL>"}', '{"type":"json"}'))
    EXTEND ("experiment" VARCHAR, ..., "period_start" BIGINT, ..., "sum" DOUBLE, ...)
    PARTITIONED BY DAY

Druid refuses empty inline data, so a day left with no rows at all is sent as one
placeholder row ``{}`` that ``WHERE "date" = '<day>'`` (before ``PARTITIONED BY``) filters
out: the REPLACE then yields no rows and drops the day (``failOnEmptyInsert: false``, the
default since Druid 29).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from results.schema import COLUMNS, FLOAT_COLUMNS, INTEGER_COLUMNS, ResultRow, Slice

# Druid SQL types of the results columns, as declared in EXTEND and stored in segments.
DRUID_TYPES: dict[str, str] = {
    name: "BIGINT" if name in INTEGER_COLUMNS else "DOUBLE" if name in FLOAT_COLUMNS else "VARCHAR"
    for name in COLUMNS
}


def ident(name: str) -> str:
    """A quoted Druid SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A Druid SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Sequence[str]) -> str:
    return f"{ident(column)} IN ({', '.join(literal(v) for v in sorted(set(values)))})"


def day_filter(first: date, last: date | None = None) -> str:
    """``__time`` within the days ``first`` through ``last`` (default: ``first``), UTC."""
    end = (last or first) + timedelta(days=1)
    return (
        f"{ident('__time')} >= TIMESTAMP '{first.isoformat()} 00:00:00' "
        f"AND {ident('__time')} < TIMESTAMP '{end.isoformat()} 00:00:00'"
    )


def slice_filter(slice: Slice) -> str:
    parts = [
        f"{ident('source')} = {literal(slice.source)}",
        f"{ident('metric_type')} = {literal(slice.metric_type)}",
        in_list("metric", slice.metrics),
    ]
    if slice.experiments is not None:
        parts.append(in_list("experiment", slice.experiments) if slice.experiments else "FALSE")
    return " AND ".join(parts)


def replace_statement(
    datasource: str, day: date, rows: Sequence[ResultRow], last: date | None = None
) -> str:
    """The REPLACE that makes ``rows`` the whole content of ``day`` (every row of that day),
    or of the days ``day`` through ``last``."""
    last = last or day
    stray = [row.key() for row in rows if not day.isoformat() <= row.date <= last.isoformat()]
    if stray:
        days = day.isoformat() if last == day else f"{day.isoformat()} to {last.isoformat()}"
        raise ValueError(f"rows of another day than {days}: {stray[:3]}")
    columns = ", ".join(ident(name) for name in COLUMNS)
    select = f"SELECT TIME_PARSE({ident('date')}) AS {ident('__time')}, {columns}\n"
    if rows:
        select += f"FROM {extern(rows)}"
    else:  # Druid refuses empty inline data: one placeholder row, filtered out
        select += f"FROM {extern([])}\nWHERE {ident('date')} = {literal(day.isoformat())}"
    return (
        f"REPLACE INTO {ident(datasource)}\nOVERWRITE WHERE {day_filter(day, last)}\n"
        f"{select}\nPARTITIONED BY DAY"
    )


def extern(rows: Sequence[ResultRow]) -> str:
    """``TABLE(EXTERN(...)) EXTEND (...)`` over the rows as inline JSON lines (``{}`` if none)."""
    data = "\n".join(json.dumps(row.to_dict(), separators=(",", ":")) for row in rows) or "{}"
    source = json.dumps({"type": "inline", "data": data}, separators=(",", ":"))
    fmt = json.dumps({"type": "json"})
    extend = ", ".join(f"{ident(name)} {DRUID_TYPES[name]}" for name in COLUMNS)
    return f"TABLE(EXTERN({literal(source)}, {literal(fmt)}))\nEXTEND ({extend})"


def select_statement(
    datasource: str,
    *,
    source: str | None,
    metric_type: str | None,
    date_from: date | None,
    date_to: date | None,
    metrics: Sequence[str] | None,
    experiments: Sequence[str] | None,
    exclude: Slice | None = None,
) -> str:
    """A scan of the datasource with the read filters (Druid orders scans by time only).

    ``exclude`` leaves out the rows of a slice: what a write carries over of the slice's day.
    """
    where = []
    if source is not None:
        where.append(f"{ident('source')} = {literal(source)}")
    if metric_type is not None:
        where.append(f"{ident('metric_type')} = {literal(metric_type)}")
    if date_from is not None:
        where.append(f"{ident('__time')} >= TIMESTAMP '{date_from.isoformat()} 00:00:00'")
    if date_to is not None:
        end = date_to + timedelta(days=1)
        where.append(f"{ident('__time')} < TIMESTAMP '{end.isoformat()} 00:00:00'")
    if metrics is not None:
        where.append(in_list("metric", metrics))
    if experiments is not None:
        where.append(in_list("experiment", experiments))
    if exclude is not None:
        where.append(f"NOT ({slice_filter(exclude)})")
    query = f"SELECT {', '.join(_selected(name) for name in COLUMNS)} FROM {ident(datasource)}"
    return query + (" WHERE " + " AND ".join(where) if where else "")


# pydruid's streaming JSON parser takes the closing quote of a string that ends with a
# backslash ("C:\\") for an escaped one and silently drops every row from there on: reads
# end each text value with this mark (CONCAT in the query, removed in row_from_druid).
TEXT_END = "."


def _selected(name: str) -> str:
    if name in INTEGER_COLUMNS or name in FLOAT_COLUMNS:
        return ident(name)
    return f"CONCAT({ident(name)}, {literal(TEXT_END)}) AS {ident(name)}"


def row_from_druid(values: dict[str, Any]) -> ResultRow:
    """A result row from Druid's JSON: text nulls are ``""`` (Druid may store ``""`` as null)."""
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = values.get(name)
        if name in INTEGER_COLUMNS:
            out[name] = int(value) if value is not None else value
        elif name in FLOAT_COLUMNS:
            out[name] = float(value) if value is not None else None
        else:
            text = "" if value is None else str(value)
            out[name] = text[: -len(TEXT_END)] if text.endswith(TEXT_END) else text
    return ResultRow.from_dict(out)
