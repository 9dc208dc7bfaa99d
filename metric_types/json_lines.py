"""Archive JSON lines as Arrow tables: the one parser behind both cleanings.

The local cleaning (:mod:`metric_types.columnar`) calls it in threads on the driver; the Spark
cleaning (:mod:`metric_types.spark.cleaning`) calls it inside ``mapInArrow`` on the executors,
one archive file at a time. So a line means the same in both: Arrow's JSON reader types
the committed bytes of a file; a file it cannot type (a segment field that is a number in
some lines, say, or a torn line) is read line by line with :func:`udf.archive.records.parse`
instead, with the same result for every valid line, and the others are counted as corrupt.

Rows keep the file's line order (arrival order). Events: ``user_id, event_type, ts, value``
(1.0 when absent) plus one string column per segment field (a string as it is, a number as
its JSON spelling); activations: ``user_id, experiment, group, ts``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from udf.archive.records import REQUIRED, Corrupt, parse
from udf.logging import get_logger
from udf.times import TS_MAX, TS_MIN

if TYPE_CHECKING:
    import pyarrow as pa

log = get_logger(__name__)

EVENT_FIELDS = ("user_id", "event_type", "ts", "value")
ACTIVATION_FIELDS = ("user_id", "experiment", "group", "ts")


def event_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [("user_id", pa.int64()), ("event_type", pa.string()), ("ts", pa.int64()),
         ("value", pa.float64())]
    )  # fmt: skip


def activation_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [("user_id", pa.int64()), ("experiment", pa.string()), ("group", pa.string()),
         ("ts", pa.int64())]
    )  # fmt: skip


def read_lines(data: bytes, topic: str, label: str, corrupt: list[int]) -> pa.Table:
    """The records of one file's committed bytes, in line order; ``corrupt`` gets the line
    numbers of the others (logged with ``label``, the file's name)."""
    if topic == "events":
        table = _read_json(data, event_schema(), topic, label, corrupt, extra=True)
        i = table.schema.get_field_index("value")
        return table.set_column(i, "value", table.column(i).fill_null(1.0))
    return _read_json(data, activation_schema(), topic, label, corrupt, extra=False).select(
        list(ACTIVATION_FIELDS)
    )


def unify(tables: Iterable[pa.Table], topic: str) -> pa.Table:
    """One table from several files' tables; a segment field missing from a file reads as null."""
    import pyarrow as pa

    tables = [t for t in tables if t.num_rows]
    if not tables:
        schema = event_schema() if topic == "events" else activation_schema()
        return pa.table({f.name: pa.array([], f.type) for f in schema})
    return pa.concat_tables(tables, promote_options="default")


def _read_json(
    data: bytes, schema: pa.Schema, topic: str, label: str, corrupt: list[int], *, extra: bool
) -> pa.Table:
    import pyarrow as pa
    import pyarrow.json as pj

    if not data.strip():
        return pa.table({f.name: pa.array([], f.type) for f in schema})
    try:
        table = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(use_threads=True, block_size=1 << 24),
            parse_options=pj.ParseOptions(
                explicit_schema=schema,
                unexpected_field_behavior="infer" if extra else "ignore",
                newlines_in_values=False,
            ),
        )
        extras = [f for f in table.schema if f.name not in schema.names]
        typed = all(pa.types.is_string(f.type) or pa.types.is_null(f.type) for f in extras)
        if typed and _all_valid(table, topic):
            for f in extras:
                if pa.types.is_null(f.type):
                    i = table.schema.get_field_index(f.name)
                    table = table.set_column(i, f.name, table.column(i).cast(pa.string()))
            return table
    except pa.ArrowInvalid:
        pass
    return _read_json_slowly(data, schema, topic, label, corrupt, extra=extra)


def _all_valid(table: pa.Table, topic: str) -> bool:
    """Whether every row passes the importer's checks (else the slow path finds which fail)."""
    import pyarrow.compute as pc

    required = [name for name, _ in REQUIRED[topic]]
    if any(table.column(name).null_count for name in required):
        return False
    bounds = pc.min_max(table.column("ts")).as_py()
    if table.num_rows and not (bounds["min"] >= TS_MIN and bounds["max"] < TS_MAX):
        return False
    texts = [name for name, kind in REQUIRED[topic] if kind == "str"]
    return not any(
        pc.any(pc.equal(pc.utf8_length(table.column(name)), 0)).as_py() for name in texts
    )


def field_texts(line: bytes) -> dict[str, Any]:
    """The top-level fields of a valid record, a number as it is written in ``line``
    (``1.50`` stays ``1.50``, ``1e2`` stays ``1e2``, not orjson's float ``1.5``, ``100.0``);
    the last of a repeated key wins, as in orjson."""
    return json.loads(line, parse_int=str, parse_float=str)


def _read_json_slowly(
    data: bytes, schema: pa.Schema, topic: str, label: str, corrupt: list[int], *, extra: bool
) -> pa.Table:
    import pyarrow as pa

    known = set(schema.names)
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    n = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = parse(line, topic)
        except Corrupt as bad:
            corrupt.append(number)
            log.warning("archive.corrupt_line", file=label, line=number,
                        kind=bad.kind, reason=str(bad))  # fmt: skip
            continue
        for name in schema.names:
            columns[name].append(record.get(name))
        if extra:
            texts: dict[str, Any] | None = None
            for key, value in record.items():
                if key in known or value is None:
                    continue
                if not isinstance(value, str):  # a number: its JSON spelling, as in the line
                    texts = texts if texts is not None else field_texts(line)
                    value = texts[key]
                columns.setdefault(key, [None] * n).append(value)
        n += 1
        for values in columns.values():
            if len(values) < n:
                values.append(None)
    arrays = {name: pa.array(columns[name], schema.field(name).type) for name in schema.names}
    arrays.update({k: pa.array(v, pa.string()) for k, v in columns.items() if k not in known})
    return pa.table(arrays)
