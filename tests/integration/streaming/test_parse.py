"""The pipeline's SQL checks agree with the importer's (udf/archive/records.py), line by line.

Every line of the generated workload (valid records, duplicates, and the generator's corrupt
lines of every kind) plus hand-written edge cases goes through the SQL of
:mod:`streaming.parse` in Flink and through :func:`udf.archive.records.parse`: the same lines
are corrupt, with the same kind, and the valid ones have the same fields.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from metric_types.json_lines import field_texts
from streaming import jvm, parse
from streaming.source import TimestampExtractor
from udf.archive.records import Corrupt
from udf.archive.records import parse as parse_line

pytestmark = [pytest.mark.flink, pytest.mark.slow]

EDGE_CASES = [
    '  {"ts":5,"event_type":"a","user_id":7,"value":3}  ',
    '{"user_id": 1, "event_type": "click", "ts": 1000, "value": 2.5, "country": "us"}',
    '{"user_id":1,"event_type":"click","ts":1000,"country":"new york, ny"}',
    '{"user_id":1,"event_type":"cl\\"ick","ts":1000}',
    '{"user_id":1,"event_type":"caf\\u00e9","ts":1000}',
    '{"user_id":1,"event_type":"click","ts":1,"ts":2}',
    '{"user_id":1,"event_type":"click","ts":1,"value":null,"country":null}',
    '{"user_id":1,"event_type":"click","ts":1,"country":"a:b"}',
    '{"user_id":-0,"event_type":"click","ts":0,"value":1e3}',
    '{"user_id":1,"event_type":"click","ts":1,"value":-2.5E-3,"country":7}',
    '{"user_id":1,"event_type":"click","ts":1,"country":1.50}',
    '{"user_id":1,"event_type":"click","ts":2,"country":1e2}',
    '{"user_id":1,"event_type":"click","ts":3,"country":-0}',
    '{"user_id":1,"event_type":"click","ts":4,"country":123456789012345678901234567890}',
    '{"user_id":1,"event_type":"cl\\"ick","ts":5,"country":1.50}',
    '{"user_id":"1","event_type":"click","ts":1000}',
    '{"user_id":1.0,"event_type":"click","ts":1000}',
    '{"user_id":1,"event_type":"","ts":1000}',
    '{"user_id":1,"event_type":5,"ts":1000}',
    '{"user_id":1,"ts":1000}',
    '{"user_id":1,"event_type":"click","ts":null}',
    '{"user_id":1,"event_type":"click","ts":-5}',
    '{"user_id":1,"event_type":"click","ts":253402300800000}',
    '{"user_id":18446744073709551615,"event_type":"click","ts":1}',
    '{"user_id":1,"event_type":"click","ts":1,"value":"3"}',
    '{"user_id":1,"event_type":"click","ts":1,"value":true}',
    '{"user_id":1,"event_type":"click","ts":1,"extra":[1,2]}',
    '{"user_id":1,"event_type":"click","ts":1,"extra":{"a":1}}',
    '{"user_id":true,"event_type":"click","ts":1}',
    '{"user_id":1,"event_type":["click"],"ts":1}',
    '{"user_id":1,"event_type":"click","ts":1.5}',
    "[1,2]",
    '"x"',
    '{"user_id":1,"event_type":"click"',
    "not json",
    "{}",
    # the plain lines' one-pass scanner (PlainFields.java) at the edges of its grammar
    '{"user_id":1,"event_type":"click","ts":1704067200000,"value":1.}',
    '{"user_id":1,"event_type":"click","ts":1704067200000,"value":1e}',
    '{"user_id":1,"event_type":"click","ts":1704067200000,"value":.5}',
    '{"user_id":01,"event_type":"click","ts":1704067200000}',
    '{"user_id":1,"event_type":"click","ts":1704067200000,"value":-0.25e+2}',
    '{"user_id":1,"event_type":"click","ts":1704067200000,"value":nul}',
    '{"user_id":1,"event_type":"click","ts":1704067200000,}',
    '\t{ "user_id" :\t1 ,\r"event_type": "click" , "ts" : 1704067200000 }',
    '{"user_id":1,"event_type":"click","ts":1704067200000,"user_id":2,"event_type":"view"}',
    '{"user_id":1,"event_type":"cl\u2028ick","ts":1704067200000,"value":2}',
    '{"user_id":1,"event_type":"\u00e9t\u00e9 \U0001f600","ts":1704067200000,"country":"\u00e9"}',
    '{"user_id":1,"event_type":"click","ts":1704067200000,"country":"x\x7f"}',
    '{"user_id":1,"event_type":"click","ts":1704067200000,"country":""}',
    # integers at the edges of 64 bits (JsonLong.java)
    '{"user_id":9223372036854775807,"event_type":"click","ts":1704067200000}',
    '{"user_id":9223372036854775808,"event_type":"click","ts":1704067200000}',
    '{"user_id":-9223372036854775808,"event_type":"click","ts":1704067200000}',
    '{"user_id":-9223372036854775809,"event_type":"click","ts":1704067200000}',
    '{"user_id":1e19,"event_type":"click","ts":1704067200000}',
    '{"user_id":-9223372036854775808.0,"event_type":"click","ts":1704067200000}',
    '{"user_id":-,"event_type":"click","ts":1704067200000}',
    '{"user_id":-01,"event_type":"click","ts":1704067200000}',
    '{"user_id":1,"event_type":"click","ts":-1704067200000}',
    '{"user_id":1,"event_type":"click","ts":"1704067200000"}',
]


def _expected(lines: list[str], topic: str, fields: list[str]) -> Counter[tuple]:
    out: Counter[tuple] = Counter()
    for line in lines:
        try:
            record = parse_line(line.encode(), topic)
        except Corrupt as bad:
            out[(line, bad.kind)] += 1
            continue
        values = []
        for f in fields:
            v = record.get(f)
            if f == "value":
                v = float(v) if v is not None else 1.0
            elif f == "country" and v is not None and not isinstance(v, str):
                v = field_texts(line.encode())[f]  # a number: as batch reads it
            values.append(v)
        out[(line, None, *values)] += 1
    return out


def _flink(folder: Path, topic: str, fields: list[str], segments: list[str]) -> Counter[tuple]:
    """The checked lines, written by Flink to JSON files (collecting them row by row through
    the Python gateway would take most of the test's time)."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("parallelism.default", "2")
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE raw_{topic} (line STRING) WITH ('connector' = 'filesystem', "
        f"'path' = '{folder.as_uri()}', 'format' = 'raw')"
    )
    query = parse.checked_query(t_env, topic, f"raw_{topic}", segments)
    names = ["line", "kind", *fields, *(f"seg_{i}" for i in range(len(segments)))]
    out_dir = folder.parent / f"{topic}-checked"
    types = {"user_id": "BIGINT", "ts": "BIGINT", "value": "DOUBLE"}
    columns = ", ".join(f"{parse.ident(n)} {types.get(n, 'STRING')}" for n in names)
    t_env.execute_sql(
        f"CREATE TEMPORARY TABLE checked ({columns}) WITH ('connector' = 'filesystem', "
        f"'path' = '{out_dir.as_uri()}', 'format' = 'json')"
    )
    selected = ", ".join(parse.ident(n) for n in names)
    t_env.execute_sql(f"INSERT INTO checked SELECT {selected} FROM ({query})").wait()
    out: Counter[tuple] = Counter()
    for path in out_dir.rglob("*"):
        if path.is_file() and not path.name.startswith((".", "_")):
            for text in filter(None, path.read_text().split("\n")):  # not at U+2028
                row = json.loads(text)
                values = [row.get(n) for n in names]
                out[tuple(values[:2]) if values[1] else tuple(values)] += 1
    return out


@pytest.mark.parametrize("topic", ["events", "activations"])
def test_sql_checks_agree_with_the_importer(workload: Path, tmp_path: Path, topic: str) -> None:
    lines = [line for p in sorted((workload / topic).glob("*.jsonl"))
             for line in p.read_text().splitlines() if line.strip()]  # fmt: skip
    if topic == "events":
        lines += EDGE_CASES
    folder = tmp_path / topic
    folder.mkdir()
    (folder / "lines.jsonl").write_text("".join(line + "\n" for line in lines))
    if topic == "events":
        fields, segments = ["user_id", "event_type", "ts", "value"], ["country"]
    else:
        fields, segments = ["user_id", "experiment", "group", "ts"], []
    expected = _expected(lines, topic, fields + segments)
    actual = _flink(folder, topic, fields, segments)
    kinds = Counter(k[1] for k in expected.elements())
    assert kinds[None] > 1000 and len(kinds) >= 4, kinds  # valid lines and several corrupt kinds
    missing = expected - actual
    unexpected = actual - expected
    assert not missing and not unexpected, (
        f"records.py only: {list(missing.items())[:10]}\nSQL only: {list(unexpected.items())[:10]}"
    )


# The rule TimestampExtractor.json_field's Java function (IntegerField.java) implements,
# as the regular expression it replaced spelled it: Python's `re` is the reference.
EVENT_TIME = r'"ts"[ \t]*:[ \t]*(-?[0-9]{1,18})[ \t]*[,}]'
EVENT_TIME_CASES = [
    '{"ts" :\t-5 }',
    '{"ts":123456789012345678}',
    '{"ts":1234567890123456789}',
    '{"ts":-0,"user_id":1}',
    '{"ts":"5","x":{"ts":7}}',
    '{"event_type":"ts","ts":3}',
    '{"ts":5 ,"user_id":1}',
    '{"ts":5x,"ts":6}',
    '{"ts":-,"ts":-}',
    '{"ts":1.5}',
    '{"ts":\n5}',
    '{"tts":5,"ts" : 9 ,}',
    '{"ts":}',
    '{"\u00e9t\u00e9":"\U0001f600","ts":12}',
    '"ts":4}',
    '{"ts":4',
    "",
]


def test_the_event_time_follows_the_regular_expressions_rule() -> None:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    lines = EVENT_TIME_CASES + EDGE_CASES
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("parallelism.default", "1")
    jvm.register(t_env)
    t_env.create_temporary_view("lines", t_env.from_elements(list(enumerate(lines)), ["i", "line"]))
    sql = TimestampExtractor.json_field("ts").sql
    with t_env.execute_sql(f"SELECT i, {sql} FROM lines").collect() as rows:
        actual = {row[0]: row[1] for row in rows}
    expected = {}
    for i, line in enumerate(lines):
        match = re.search(EVENT_TIME, line)
        expected[i] = int(match.group(1)) if match else None
    assert sum(v is None for v in expected.values()) >= 8  # the rule refuses lines too
    assert actual == expected
