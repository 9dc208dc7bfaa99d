"""The clean-events cache: duplicates, the hourly cap, segment fields, and rebuilds."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from metric_types.columnar import FINGERPRINT, clean_events, convert
from udf.archive.importer import Importer
from udf.home import Home

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
HOUR = 3_600_000


def _table(rows: list[dict]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "event_type": pa.array([r["event_type"] for r in rows], pa.string()),
            "ts": pa.array([r["ts"] for r in rows], pa.int64()),
            "value": pa.array([r.get("value", 1.0) for r in rows], pa.float64()),
        }
    )


def test_a_duplicate_keeps_its_earliest_line() -> None:
    rows = [
        {"user_id": 1, "event_type": "click", "ts": T0 + 5, "value": 7.0},
        {"user_id": 2, "event_type": "click", "ts": T0 + 5, "value": 1.0},
        {"user_id": 1, "event_type": "click", "ts": T0 + 5, "value": 3.0},  # same event, later
        {"user_id": 1, "event_type": "search", "ts": T0 + 5, "value": 2.0},  # another type
    ]
    out = clean_events(_table(rows), spam_cap=1000).to_pylist()
    assert sorted((r["user_id"], r["event_type"], r["value"]) for r in out) == [
        (1, "click", 7.0), (1, "search", 2.0), (2, "click", 1.0),
    ]  # fmt: skip


def test_the_cap_keeps_the_first_events_by_time_then_type() -> None:
    rows = [
        {"user_id": 9, "event_type": "zoom", "ts": T0 + 30},
        {"user_id": 9, "event_type": "click", "ts": T0 + 40},
        {"user_id": 9, "event_type": "alpha", "ts": T0 + 30},  # ties on ts: alpha before zoom
        {"user_id": 9, "event_type": "beta", "ts": T0 + 10},
        {"user_id": 8, "event_type": "click", "ts": T0 + 50},  # another user: own cap
    ]
    out = clean_events(_table(rows), spam_cap=2).to_pylist()
    kept = sorted((r["user_id"], r["ts"] - T0, r["event_type"]) for r in out)
    assert kept == [(8, 50, "click"), (9, 10, "beta"), (9, 30, "alpha")]


def test_duplicates_do_not_use_up_the_cap() -> None:
    rows = [{"user_id": 1, "event_type": "click", "ts": T0 + 1}] * 5 + [
        {"user_id": 1, "event_type": "click", "ts": T0 + 2}
    ]
    out = clean_events(_table(rows), spam_cap=2).to_pylist()
    assert [r["ts"] - T0 for r in out] == [1, 2]


def _import(home: Home, lines: list[dict], name: str) -> None:
    path = home.root / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    Importer(home).import_files("events", [str(path)])


def test_conversion_is_cached_and_rebuilt_when_the_hour_grows(home: Home) -> None:
    first = [
        {"user_id": 1, "event_type": "click", "ts": T0 + 1, "country": "US"},
        {"user_id": 2, "event_type": "view", "ts": T0 + 2, "value": 2.5},
    ]
    _import(home, first, "a.jsonl")
    [hour] = convert(home, "events", spam_cap=10)
    assert hour.event_types == ("click", "view")
    stamp = Path(hour.path).parent / FINGERPRINT
    before = stamp.stat().st_mtime_ns
    assert convert(home, "events", spam_cap=10)[0].path == hour.path
    assert stamp.stat().st_mtime_ns == before  # reused, not rebuilt

    _import(home, [{"user_id": 3, "event_type": "buy", "ts": T0 + 3, "country": 44}], "b.jsonl")
    [hour] = convert(home, "events", spam_cap=10)
    table = pq.read_table(hour.path)
    assert hour.event_types == ("buy", "click", "view")
    by_user = {r["user_id"]: r for r in table.to_pylist()}
    assert by_user[1]["country"] == "US" and by_user[1]["value"] == 1.0
    assert by_user[2]["value"] == 2.5 and by_user[2]["country"] is None
    assert by_user[3]["country"] == "44"  # a number is kept as its JSON spelling


def test_a_new_cap_rebuilds_and_hours_outside_the_range_are_skipped(home: Home) -> None:
    lines = [{"user_id": 1, "event_type": "e", "ts": T0 + i} for i in range(5)]
    lines.append({"user_id": 1, "event_type": "e", "ts": T0 + 3 * HOUR})
    _import(home, lines, "a.jsonl")
    assert [pq.read_metadata(h.path).num_rows for h in convert(home, "events", spam_cap=10)] == [
        5,
        1,
    ]
    capped = convert(home, "events", spam_cap=2, ts_to=T0 + HOUR)
    assert [pq.read_metadata(h.path).num_rows for h in capped] == [2]


def test_no_temporary_files_are_left(home: Home) -> None:
    _import(home, [{"user_id": 1, "event_type": "e", "ts": T0}], "a.jsonl")
    [hour] = convert(home, "events", spam_cap=10)
    assert sorted(p.name for p in Path(hour.path).parent.iterdir()) == [
        "_source.json",
        "data.parquet",
    ]


def test_a_torn_line_is_counted_named_and_the_rest_is_computed(home: Home, caplog) -> None:
    # A torn line (a crash of an older writer, a hand edit) gave a 72-line orjson traceback
    # that named no file. Now it is counted as corrupt, logged with its file and line, and
    # every valid line around it is converted.
    _import(home, [{"user_id": 1, "event_type": "click", "ts": T0 + 1}], "a.jsonl")
    [part] = sorted(home.archive.glob("events/dt=*/hour=*/part-*.jsonl"))
    with part.open("ab") as fh:
        fh.write(b'{"user_id": 1, "event_ty\n')  # the torn line: line 2 of the file
        fh.write(b'{"user_id": "x", "event_type": "click", "ts": 1767225600003}\n')  # line 3
    _import(home, [{"user_id": 1, "event_type": "view", "ts": T0 + 2}], "b.jsonl")

    with caplog.at_level("WARNING"):
        [hour] = convert(home, "events", spam_cap=10)
    assert hour.corrupt == 2
    assert [(r["event_type"], r["ts"] - T0) for r in pq.read_table(hour.path).to_pylist()] == [
        ("click", 1),
        ("view", 2),
    ]
    named = [r.getMessage() for r in caplog.records if "archive.corrupt_line" in r.getMessage()]
    assert len(named) == 2
    assert f"file={part}" in named[0] and "line=2" in named[0] and "invalid JSON" in named[0]
    assert "line=3" in named[1] and "'user_id' must be an integer" in named[1]
    caplog.clear()
    with caplog.at_level("WARNING"):
        [cached] = convert(home, "events", spam_cap=10)  # from the cache: still counted
    assert cached.corrupt == 2
    assert any(
        "archive.corrupt " in r.getMessage() and "lines=2" in r.getMessage() for r in caplog.records
    )


def test_a_half_applied_import_is_not_converted(home: Home) -> None:
    # The journal of an import that is being applied (or crashed and cannot be finished)
    # names the files it appends to and their sizes before it: readers stop there.
    from udf.archive.view import committed_view

    _import(home, [{"user_id": 1, "event_type": "click", "ts": T0 + 1}], "a.jsonl")
    [part] = sorted(home.archive.glob("events/dt=*/hour=*/part-*.jsonl"))
    committed = part.stat().st_size
    journal = home.archive / "_journal" / "20260101T000000-deadbeef.json"
    journal.parent.mkdir(exist_ok=True)
    rel = str(part.relative_to(home.archive / "events"))
    journal.write_text(
        json.dumps(
            {
                "entry": {
                    "import_id": "20260101T000000-deadbeef",
                    "topic": "events",
                    "source": "b.jsonl",
                },
                "targets": [{"rel": rel, "size_before": committed, "staged_size": 999}],
            }
        )
    )
    with part.open("ab") as fh:
        fh.write(b'{"user_id": 2, "event_type": "click", "ts": 1767225600005}\n{"user_id": 3, "ev')

    view = committed_view(home, recover=False)
    assert [(f.path, f.size) for f in view.files] == [(part, committed)]
    assert [e["import_id"] for e in view.hidden] == ["20260101T000000-deadbeef"]
    [hour] = convert(home, "events", spam_cap=10)  # recovery finds no staging: rolled back
    assert [r["user_id"] for r in pq.read_table(hour.path).to_pylist()] == [1]
    assert hour.corrupt == 0 and part.stat().st_size == committed


def test_a_numeric_segment_value_keeps_its_json_spelling() -> None:
    # docs/metrics.md: a segment field is kept as text, a number as its JSON spelling; the
    # stream reads the same archive lines the same way (tests/integration/streaming/test_parse.py)
    from metric_types.json_lines import read_lines

    spellings = ["1.50", "1e2", "-0", "7", "2.5E-3", "123456789012345678901234567890", '"us"']
    lines = [
        f'{{"user_id":{i},"event_type":"click","ts":{T0 + i},"country":{text}}}'
        for i, text in enumerate(spellings)
    ]
    lines.append(f'{{"user_id":9,"event_type":"click","ts":{T0},"country":1,"country":2.0}}')
    corrupt: list[int] = []
    table = read_lines("\n".join(lines).encode(), "events", "test", corrupt)
    assert corrupt == []
    assert table.column("country").to_pylist() == [*spellings[:-1], "us", "2.0"]
