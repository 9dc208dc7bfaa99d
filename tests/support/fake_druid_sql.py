"""What the fake Druid accepts as a REPLACE, and how it turns one into DuckDB SQL.

Checks follow Druid's own rules for SQL-based ingestion plus the results schema:
``REPLACE INTO <ds> OVERWRITE WHERE <__time range> <SELECT> PARTITIONED BY DAY``, the WHERE
filtering ``__time`` only with a range aligned to days, every EXTERN an inline JSON source with
an EXTEND list that declares exactly the results columns with their Druid types. A statement
that breaks one is refused with the reason, as Druid would refuse it (HTTP 400).

The fake is stricter than Druid where Druid's support is narrow or undocumented, so the store
never comes to depend on it: a SELECT with a set operation (``UNION``, ``INTERSECT``,
``EXCEPT``) is refused, as MSQ plans ``UNION ALL`` only as a union of plain table reads, and
so is a SELECT that reads the datasource it overwrites (the store carries the rest of the
day over client-side, inside its one inline EXTERN).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlglot
from sqlglot import exp

# The results columns and their Druid types, written out by hand (not taken from the
# product): a statement declaring anything else is refused. tests/golden/results_schema.json
# is the reference; tests/unit/results/test_golden_schema.py keeps the two in step.
EXPECTED_TYPES = {
    "experiment": "VARCHAR",
    "group": "VARCHAR",
    "metric": "VARCHAR",
    "metric_type": "VARCHAR",
    "period_start": "BIGINT",
    "period_end": "BIGINT",
    "date": "VARCHAR",
    "day_in": "BIGINT",
    "segment": "VARCHAR",
    "segment_value": "VARCHAR",
    "exposed": "BIGINT",
    "volume": "BIGINT",
    "propensity": "BIGINT",
    "n": "BIGINT",
    "sum": "DOUBLE",
    "sum_sq": "DOUBLE",
    "den_sum": "DOUBLE",
    "den_sum_sq": "DOUBLE",
    "sum_xy": "DOUBLE",
    "pre_sum": "DOUBLE",
    "pre_sum_sq": "DOUBLE",
    "pre_sum_xy": "DOUBLE",
    "cap": "DOUBLE",
    "quantile": "DOUBLE",
    "quantile_low": "DOUBLE",
    "quantile_high": "DOUBLE",
    "lift_abs": "DOUBLE",
    "lift_rel": "DOUBLE",
    "ci_low": "DOUBLE",
    "ci_high": "DOUBLE",
    "rel_ci_low": "DOUBLE",
    "rel_ci_high": "DOUBLE",
    "p_value": "DOUBLE",
    "p_value_adjusted": "DOUBLE",
    "cuped_lift_abs": "DOUBLE",
    "cuped_lift_rel": "DOUBLE",
    "cuped_ci_low": "DOUBLE",
    "cuped_ci_high": "DOUBLE",
    "cuped_rel_ci_low": "DOUBLE",
    "cuped_rel_ci_high": "DOUBLE",
    "cuped_p_value": "DOUBLE",
    "variance_reduction": "DOUBLE",
    "look": "BIGINT",
    "seq_decision": "VARCHAR",
    "seq_p_value": "DOUBLE",
    "seq_alpha": "DOUBLE",
    "seq_ci_low": "DOUBLE",
    "seq_ci_high": "DOUBLE",
    "seq_rel_ci_low": "DOUBLE",
    "seq_rel_ci_high": "DOUBLE",
    "prob_beat_control": "DOUBLE",
    "expected_loss": "DOUBLE",
    "mde": "DOUBLE",
    "mde_rel": "DOUBLE",
    "srm_p_value": "DOUBLE",
    "multiple_groups": "BIGINT",
    "health": "VARCHAR",
    "status": "VARCHAR",
    "source": "VARCHAR",
    "computed_at": "BIGINT",
    "schema_version": "BIGINT",
}
DUCKDB_TYPES = {"VARCHAR": "VARCHAR", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE"}
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_STATEMENT = re.compile(
    r"\s*REPLACE\s+INTO\s+(?P<ds>\"(?:[^\"]|\"\")+\"|\w+)\s+OVERWRITE\s+"
    r"(?:(?P<all>ALL)|WHERE\s+(?P<where>.+?))\s+(?P<select>(?:SELECT|WITH)\b.+?)"
    r"(?:\s+PARTITIONED\s+BY\s+(?P<granularity>\w+)(?P<rest>\s+CLUSTERED\s+BY\s+.+)?)?\s*",
    re.S | re.I,
)
_INTERVAL = re.compile(
    r"\"?__time\"?\s*>=\s*TIMESTAMP\s+(__lit\d+__)\s+AND\s+\"?__time\"?\s*<\s*TIMESTAMP\s+(__lit\d+__)",
    re.I,
)
_EXTERN = re.compile(
    r"TABLE\s*\(\s*EXTERN\s*\(\s*(__lit\d+__)\s*,\s*(__lit\d+__)\s*(,\s*__lit\d+__\s*)?\)\s*\)"
    r"\s*(?:EXTEND\s*)?(?:\((?P<columns>[^()]*)\))?",
    re.I,
)


class Rejected(Exception):
    """The statement is invalid: Druid answers HTTP 400 with this message."""


@dataclass
class Replace:
    """A checked REPLACE: target, interval and the DuckDB SELECT that produces the new day."""

    datasource: str
    start: datetime
    end: datetime
    select: str  # DuckDB SQL, EXTERNs replaced by the tables in ``externs``
    externs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def parse_replace(query: str, next_name: Any) -> Replace:
    """Check a statement sent to /druid/v2/sql/task; ``next_name()`` names each EXTERN table."""
    literals: list[str] = []

    def hide(match: re.Match[str]) -> str:
        literals.append(match.group(0)[1:-1].replace("''", "'"))
        return f"__lit{len(literals) - 1}__"

    skeleton = _LITERAL.sub(hide, query)
    match = _STATEMENT.fullmatch(skeleton)
    if not match:
        if not re.match(r"\s*(REPLACE|INSERT)\b", skeleton, re.I):
            raise Rejected("only INSERT and REPLACE statements (or SELECT) run as SQL tasks")
        if re.match(r"\s*INSERT\b", skeleton, re.I):
            raise Rejected("the results store must REPLACE a day; INSERT would add duplicates")
        raise Rejected("cannot parse the REPLACE statement")
    if match["all"]:
        raise Rejected("OVERWRITE ALL would drop every day: overwrite the slice's day only")
    if not match["granularity"]:
        raise Rejected("REPLACE statements must specify a PARTITIONED BY clause")
    if match["granularity"].upper() != "DAY":
        raise Rejected(f"the results datasource is partitioned by DAY, not {match['granularity']}")
    start, end = _interval(match["where"], literals)
    datasource = _unquote(match["ds"])
    operation = re.search(r"\b(UNION|INTERSECT|EXCEPT)\b", match["select"], re.I)
    if operation:
        raise Rejected(
            f"Query could not be planned: {operation[1].upper()} in SQL-based ingestion is "
            "supported only as UNION ALL of plain table reads; the results store sends the "
            "whole day in one inline EXTERN"
        )
    externs: dict[str, list[dict[str, Any]]] = {}

    def extern(found: re.Match[str]) -> str:
        name = next_name()
        externs[name] = _extern_rows(found, literals)
        return f'"{name}"'

    select = _EXTERN.sub(extern, match["select"])
    skeleton_select = select
    select = re.sub(
        r"__lit(\d+)__", lambda m: "'" + literals[int(m[1])].replace("'", "''") + "'", select
    )
    if datasource in _tables(select, skeleton_select):
        raise Rejected(
            f"the REPLACE reads the datasource it overwrites ({datasource!r}): the results "
            "store must carry the day's other rows over client-side, in its inline EXTERN"
        )
    return Replace(datasource, start, end, select, externs)


def _tables(select: str, skeleton: str) -> set[str]:
    """The tables a SELECT reads (EXTERNs already replaced by table names); ``skeleton`` is
    the same SELECT with its literals hidden, searched when sqlglot cannot parse it."""
    try:
        return {t.name for t in sqlglot.parse_one(select, read="duckdb").find_all(exp.Table)}
    except sqlglot.errors.ParseError:
        found = re.findall(r"\b(?:FROM|JOIN)\s+(\"(?:[^\"]|\"\")+\"|\w+)", skeleton, re.I)
        return {_unquote(name) for name in found}


def _interval(where: str, literals: list[str]) -> tuple[datetime, datetime]:
    restored = re.sub(r"__lit(\d+)__", lambda m: f"'{literals[int(m[1])]}'", where)
    try:
        tree = sqlglot.parse_one(f"SELECT 1 WHERE {restored}")
    except sqlglot.errors.ParseError as exc:
        raise Rejected(f"invalid OVERWRITE WHERE clause: {exc}") from None
    others = sorted({c.name for c in tree.find_all(exp.Column)} - {"__time"})
    if others:
        raise Rejected(
            f"invalid OVERWRITE WHERE clause: only the __time column may be filtered, "
            f"not {', '.join(others)}"
        )
    match = _INTERVAL.fullmatch(where.strip())
    if not match:
        raise Rejected(
            "OVERWRITE WHERE must be __time >= TIMESTAMP '...' AND __time < TIMESTAMP '...'"
        )
    start, end = (datetime.fromisoformat(literals[int(g[5:-2])]) for g in match.groups())
    for moment in (start, end):
        if moment != datetime(moment.year, moment.month, moment.day):
            raise Rejected(
                "OVERWRITE WHERE clause contains an interval which is not aligned with "
                "PARTITIONED BY granularity DAY"
            )
    if end <= start:
        raise Rejected("OVERWRITE WHERE selects an empty interval")
    return start, end


def _extern_rows(found: re.Match[str], literals: list[str]) -> list[dict[str, Any]]:
    source = json.loads(literals[int(found.group(1)[5:-2])])
    fmt = json.loads(literals[int(found.group(2)[5:-2])])
    if found.group(3) or found["columns"] is None:
        raise Rejected("EXTERN must declare its columns with an EXTEND (...) list")
    if source.get("type") != "inline" or not source.get("data"):
        raise Rejected(f"the results store writes inline data, got input source {source}")
    if fmt != {"type": "json"}:
        raise Rejected(f"the inline data must be JSON lines, got input format {fmt}")
    declared = {}
    for item in found["columns"].split(","):
        parts = item.split()
        if len(parts) != 2:
            raise Rejected(f"cannot read EXTEND column {item.strip()!r}")
        declared[_unquote(parts[0])] = parts[1].upper()
    if declared != EXPECTED_TYPES:
        wrong = sorted(set(declared.items()) ^ set(EXPECTED_TYPES.items()))
        raise Rejected(f"EXTEND columns differ from the results schema: {wrong}")
    rows = []
    for line in source["data"].splitlines():
        row = json.loads(line)
        if not isinstance(row, dict) or set(row) - set(EXPECTED_TYPES):
            raise Rejected(f"inline row with unknown fields: {line[:200]}")
        rows.append(row)
    return rows


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name
