"""The results schema against ``tests/golden/results_schema.json``, written out by hand.

Every place that fixes the columns is compared with that file: the row class, the embedded
store's table, the Druid store's column types and the fake Druid's, and the schema table and
migration notes of ``docs/results.md``. A column added, dropped, moved or retyped anywhere
fails here until the golden file and the docs' table say so too; a column's ``since`` in
the golden file is the version that added it, whose migration note must name it, so a new
column also needs a ``SCHEMA_VERSION`` bump and a note.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from results.schema import COLUMNS, KEY, SCHEMA_VERSION, SOURCES, ResultRow
from results.stores.druid_sql import DRUID_TYPES
from results.stores.embedded import results
from tests.support.fake_druid_sql import EXPECTED_TYPES

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "results_schema.json").read_text())
DOCS = (ROOT / "docs" / "results.md").read_text()

# What each golden type is in Python, in SQL (the embedded table) and in Druid.
PYTHON = {"text": "str", "int64": "int", "int32": "int", "float64": "float"}
SQL = {"int64": "BIGINT", "int32": "INTEGER", "float64": "DOUBLE"}
DRUID = {"text": "VARCHAR", "int64": "BIGINT", "int32": "BIGINT", "float64": "DOUBLE"}


def expected(column: dict[str, Any]) -> tuple[object, ...]:
    """A golden column as (name, Python type, allowed values, nullable, SQL type, SQL
    nullable, Druid type)."""
    found = re.fullmatch(r"(\w+?)(?:\((\d+)\))?", column["type"])
    assert found, f"unknown type {column['type']!r} in the golden file"
    kind, length = found.groups()
    sql = f"VARCHAR({length})" if kind == "text" else SQL[kind]
    values = tuple(column.get("values", ()))
    null = column["nullable"]
    return (column["name"], PYTHON[kind], values, null, sql, null, DRUID[kind])


def actual(name: str) -> tuple[object, ...]:
    """The same of a column of the code: the row class, the embedded table, the Druid store."""
    hint = get_type_hints(ResultRow)[name]
    nullable = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
    if nullable:
        [hint] = [arg for arg in get_args(hint) if arg is not type(None)]
    values: tuple[Any, ...] = ()
    if get_origin(hint) is Literal:
        values = get_args(hint)
        hint = type(values[0])
    column = results.c[name]
    sql = column.type.compile()
    return (name, hint.__name__, values, nullable, sql, column.nullable, DRUID_TYPES[name])


def test_the_columns_are_the_golden_ones_in_order_with_their_types() -> None:
    assert list(COLUMNS) == [column["name"] for column in GOLDEN["columns"]]
    assert [c.name for c in results.columns] == list(COLUMNS)
    assert [actual(name) for name in COLUMNS] == [expected(c) for c in GOLDEN["columns"]]


def test_the_key_and_the_version_are_the_golden_ones() -> None:
    assert list(KEY) == GOLDEN["key"]
    assert GOLDEN["schema_version"] == SCHEMA_VERSION
    [source] = [c for c in GOLDEN["columns"] if c["name"] == "source"]
    assert list(SOURCES) == source["values"]


def test_the_fake_druid_expects_the_golden_types() -> None:
    golden = {c["name"]: DRUID[c["type"].split("(")[0]] for c in GOLDEN["columns"]}
    assert list(EXPECTED_TYPES.items()) == list(golden.items())


def migration_notes() -> dict[int, str]:
    """The notes under "### Migration notes" in docs/results.md, by version."""
    section = DOCS.split("\n### Migration notes\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^#### Version (\d+)\b.*$", section, flags=re.M)
    return {int(version): text for version, text in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_version_up_to_this_one_has_a_migration_note() -> None:
    assert f"## The schema (`SCHEMA_VERSION = {SCHEMA_VERSION}`)" in DOCS
    assert sorted(migration_notes()) == list(range(1, SCHEMA_VERSION + 1))


def test_each_added_column_is_named_in_the_note_of_its_version() -> None:
    notes = migration_notes()
    for column in GOLDEN["columns"]:
        since = column["since"]
        assert 1 <= since <= SCHEMA_VERSION, column
        if since > 1:
            assert f"`{column['name']}`" in notes.get(since, ""), (
                f"the migration note of version {since} does not name `{column['name']}`"
            )


def test_the_docs_table_lists_every_column_in_order() -> None:
    table = DOCS.split("## The schema", 1)[1].split("\n\n| column |", 1)[1].split("\n\n", 1)[0]
    documented = [
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`(\w+)`", line.split("|")[1])
    ]
    assert documented == list(COLUMNS)
