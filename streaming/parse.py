"""Record validation in Flink SQL: the rules of :mod:`udf.archive.records`, as SQL views.

A raw line becomes a typed record or a corrupt one with the same ``kind`` and reason text
the importer gives (docs/archive.md). Flink's ``JSON_VALUE`` parses the whole line on every
call (about 3 µs each here), so the common line takes a fast path of regular expressions:

* a *plain* line is a flat JSON object whose values are numbers, ``null`` or strings without
  escapes, commas or colons (:data:`PLAIN`). One pass of a Java function
  (``PlainFields.java``, :mod:`streaming.jvm`) tells a plain line and cuts out its fields
  (the last occurrence of a key wins, as in ``orjson``), at a fraction of a parse's cost
  (regular expressions did it before: one for the line and one per field);
* any other line takes the slow path: ``IS JSON OBJECT``, ``JSON_QUERY`` with an array
  wrapper to see each field's JSON type, ``JSON_VALUE`` for decoded strings, and a copy
  with its strings blanked to find booleans, arrays and objects anywhere in the record.

Each field's JSON text is computed once (a ``CROSS JOIN UNNEST`` of one row keeps the
planner from inlining it into every use). Known differences from ``orjson`` are only on
lines the importer never archives (Jackson's leniency on some malformed JSON), plus a number
in a segment field on a slow-path line: both keep a number's JSON spelling (``1.50``), but
``JSON_QUERY`` writes exponents its own way (``1e2`` as ``1E+2``) and ``-0`` as ``0``.
"""

from __future__ import annotations

from collections.abc import Sequence

from streaming import jvm
from udf.times import RANGE_TEXT, TS_MAX, TS_MIN

_W = r"[ \t\r\n]*"
_STR = r'"[^"\\,:\x00-\x1f]*"'
_NUM = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?"
_VALUE = rf"({_STR}|{_NUM}|null)"
PLAIN = rf"^{_W}\{{{_W}{_STR}{_W}:{_W}{_VALUE}({_W},{_W}{_STR}{_W}:{_W}{_VALUE})*{_W}\}}{_W}$"
_INT = r"^-?(0|[1-9][0-9]*)$"
_NUMBER = rf"^{_NUM}$"
_ANY_STRING = r'"([^"\\]|\\.)*"'

REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "events": (("user_id", "int"), ("event_type", "str"), ("ts", "ts")),
    "activations": (("user_id", "int"), ("experiment", "str"), ("group", "str"), ("ts", "ts")),
}


def lit(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return "`" + name.replace("`", "``") + "`"


def _path(field: str) -> str:
    return lit("lax $['" + field.replace("\\", "\\\\").replace("'", "\\'") + "']")


def _raw(field: str, i: int) -> str:
    """The JSON text of ``field`` in ``line`` (NULL when absent): the plain line's ``i``-th
    field from ``PlainFields``, else through a JSON path."""
    fast = f"fast[{i + 1}]"
    wrapped = f"JSON_QUERY(line, {_path(field)} WITH UNCONDITIONAL ARRAY WRAPPER)"
    slow = f"NULLIF(SUBSTRING({wrapped} FROM 2 FOR CHAR_LENGTH({wrapped}) - 2), '')"
    return f"CASE WHEN plain THEN {fast} ELSE {slow} END"


def _json_type(r: str) -> str:
    """The JSON type of raw text ``r`` in records.py's words ("a string", "an integer", ...)."""
    return (
        f"CASE WHEN {r} LIKE '\"%' THEN 'a string' WHEN {r} IN ('true', 'false') THEN 'a boolean' "
        f"WHEN {r} LIKE '[%' THEN 'an array' WHEN {r} LIKE '{{%' THEN 'an object' "
        f"WHEN REGEXP({r}, {lit(_INT)}) THEN 'an integer' ELSE 'a float' END"
    )


def _checks(field: str, kind: str, r: str, n: str | None) -> list[tuple[str, str, str]]:
    """(condition, kind, reason) of required ``field`` (JSON text in column ``r``; an integer
    field's value, ``json_long`` of the text, in column ``n``), in order: a condition holds
    only where none before it did."""
    missing = (f"{r} IS NULL OR {r} = 'null'", "missing_field",
               lit(f"missing required field '{field}'"))  # fmt: skip
    if kind == "str":
        return [
            missing,
            (f"{r} NOT LIKE '\"%'", "wrong_type",
             f"{lit(f'field {field!r} must be a string, not ')} || {_json_type(r)}"),
            (f"{r} = '\"\"'", "empty_field", lit(f"field '{field}' must not be empty")),
        ]  # fmt: skip
    checks = [
        missing,
        (f"{n} IS NULL AND NOT REGEXP({r}, {lit(_INT)})", "wrong_type",
         f"{lit(f'field {field!r} must be an integer, not ')} || {_json_type(r)}"),
        (f"{n} IS NULL", "out_of_range", lit(f"field '{field}' does not fit in 64 bits")),
    ]  # fmt: skip
    if kind == "ts":  # the accepted times of udf/times.py
        checks.append(
            (f"{n} < {TS_MIN} OR {n} >= {TS_MAX}",
             "out_of_range",
             lit(f"field '{field}' is outside the accepted times, {RANGE_TEXT}, in epoch ms"))
        )  # fmt: skip
    return checks


def _string_value(field: str, r: str) -> str:
    """The decoded string of a string field (a number's JSON text as it is)."""
    return (
        f"CASE WHEN {r} LIKE '\"%' THEN CASE WHEN plain THEN SUBSTRING({r} FROM 2 FOR "
        f"CHAR_LENGTH({r}) - 2) ELSE JSON_VALUE(line, {_path(field)}) END ELSE {r} END"
    )


def checked_query(
    t_env: object,
    topic: str,
    source: str,
    segment_fields: Sequence[str] = (),
    *,
    valid_lines: bool = True,
) -> str:
    """The query of ``topic``'s checked lines over ``source`` (a table with ``line``).

    One row per line: ``line`` (with ``valid_lines=False`` only a corrupt line's, which its dead
    letter needs: a valid line's text is NULL and is not carried further), ``kind`` and
    ``reason`` (NULL when valid), then the typed fields (NULL where a corrupt line has none):
    ``user_id, event_type, ts, value, seg_0, ...`` for events (``value`` 1.0 when absent,
    segment fields as text; every other field is dropped, the seed's "strip the fields
    nothing needs"), ``user_id, experiment, group, ts`` for activations. Two helper views
    are created on the way.
    """
    required = REQUIRED[topic]
    names = [f for f, _ in required]
    if topic == "events":
        names += [f for f in ("value", *segment_fields) if f not in names]
    col = {f: f"r_{i}" for i, f in enumerate(names)}
    raw_cols = ", ".join(col.values())
    # integer fields' values, read once (a cast per use parsed the text again each time)
    num = {f: f"n_{i}" for i, (f, kind) in enumerate(required) if kind != "str"}
    num_cols = ", ".join(num.values())
    num_exprs = ", ".join(f"json_long({col[f]})" for f in num)

    checks: list[tuple[str, str, str]] = [
        ("NOT plain AND NOT (line IS JSON)", "invalid_json", lit("invalid JSON")),
        ("NOT plain AND NOT (line IS JSON OBJECT)", "not_object", lit("not a JSON object")),
    ]
    for field, kind in required:
        checks.extend(_checks(field, kind, col[field], num.get(field)))
    blanked = f"REGEXP_REPLACE(line, {lit(_ANY_STRING)}, '\"\"')"
    checks.append(
        (f"NOT plain AND NOT REGEXP({blanked}, {lit(PLAIN)})", "wrong_type",
         lit("a field must be a string or a number, not a boolean, an array or an object"))
    )  # fmt: skip
    if topic == "events":
        r = col["value"]
        checks.append(
            (f"{r} IS NOT NULL AND {r} <> 'null' AND NOT REGEXP({r}, {lit(_NUMBER)})",
             "wrong_type", f"'field ''value'' must be a number, not ' || {_json_type(r)}")
        )  # fmt: skip
    kind_sql = " ".join(f"WHEN {c} THEN {lit(k)}" for c, k, _ in checks)
    # the checks again for the reason, only on a corrupt line
    reason_sql = " ".join(f"WHEN {c} THEN {reason}" for c, _, reason in checks)
    reason = f"CASE WHEN kind IS NULL THEN CAST(NULL AS STRING) ELSE CASE {reason_sql} END END"

    columns = []
    for field, kind in required:
        if kind == "str":
            columns.append(f"{_string_value(field, col[field])} AS {ident(field)}")
        else:
            columns.append(f"{num[field]} AS {ident(field)}")
    if topic == "events":
        r = col["value"]
        columns.append(f"CASE WHEN {r} IS NULL OR {r} = 'null' THEN CAST(1.0 AS DOUBLE) "
                       f"ELSE TRY_CAST({r} AS DOUBLE) END AS `value`")  # fmt: skip
        for i, field in enumerate(segment_fields):
            r = col[field]
            columns.append(f"CASE WHEN {r} IS NULL OR {r} = 'null' THEN CAST(NULL AS STRING) "
                           f"ELSE {_string_value(field, r)} END AS seg_{i}")  # fmt: skip

    jvm.register(t_env)
    execute = t_env.execute_sql  # type: ignore[attr-defined]
    execute(
        f"CREATE TEMPORARY VIEW {topic}_plain AS SELECT line, fast IS NOT NULL AS plain, fast "
        f"FROM {source} CROSS JOIN UNNEST(ARRAY[ROW(plain_fields(line, "
        f"{', '.join(lit(f) for f in names)}))]) AS P(fast)"
    )
    raw_exprs = ", ".join(_raw(f, i) for i, f in enumerate(names))
    execute(
        f"CREATE TEMPORARY VIEW {topic}_fields AS SELECT line, plain, {raw_cols}, {num_cols}, "
        f"kind, {reason} AS reason FROM {topic}_plain "
        f"CROSS JOIN UNNEST(ARRAY[ROW({raw_exprs})]) AS R({raw_cols}) "
        f"CROSS JOIN UNNEST(ARRAY[ROW({num_exprs})]) AS N({num_cols}) "
        f"CROSS JOIN UNNEST(ARRAY[ROW(CASE {kind_sql} ELSE CAST(NULL AS STRING) END)]) AS K(kind)"
    )
    line = (
        "line" if valid_lines else "CASE WHEN kind IS NULL THEN CAST(NULL AS STRING) ELSE line END"
    )
    return f"SELECT {line} AS line, kind, reason, {', '.join(columns)} FROM {topic}_fields"


def valid_query(checked: str, columns: Sequence[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {checked} WHERE kind IS NULL"


def corrupt_query(checked: str, topic: str) -> str:
    return f"SELECT {lit(topic)} AS topic, kind, reason, line FROM {checked} WHERE kind IS NOT NULL"


def progress_query(checked: str, topic: str) -> str:
    """One row per topic: lines read, corrupt, the latest valid event time.

    Grouped by the topic rather than a global aggregate: a global aggregate runs on one
    subtask, and its updates would be spread over the next stage's subtasks and could
    overtake each other on the way to the sink.
    """
    return (
        "SELECT topic, COUNT(*) AS records, COUNT(kind) AS corrupt, "
        "MAX(CASE WHEN kind IS NULL THEN ts END) AS max_ts "
        f"FROM (SELECT {lit(topic)} AS topic, kind, ts FROM {checked}) GROUP BY topic"
    )
