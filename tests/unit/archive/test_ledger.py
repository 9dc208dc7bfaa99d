"""The ledger's index follows the file: appended lines, a torn last line, a replaced file."""

from __future__ import annotations

import json
from pathlib import Path

from udf.archive.ledger import Ledger


def line(entry_id: str, **fields) -> bytes:
    return json.dumps({"id": entry_id, "topic": "events", "sha256": "", **fields}).encode() + b"\n"


def kafka(offsets: dict[str, list[int]], topic: str = "k.events") -> dict:
    return {"kafka": {"topic": topic, "offsets": offsets}}


def test_refresh_indexes_appends_and_waits_for_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "_ledger.jsonl"
    path.write_bytes(line("a", sha256="h1") + line("b", **kafka({"0": [0, 10], "1": [0, 4]})))
    ledger = Ledger(path)
    ledger.refresh()
    assert ledger.has("a") and ledger.find("events", "h1")["id"] == "a"
    assert ledger.kafka_offsets("events", "k.events") == {0: 10, 1: 4}
    assert ledger.find("events", "") is None  # Kafka batches are never "the same file"

    torn = line("c", **kafka({"0": [10, 25]}))
    with path.open("ab") as fh:
        fh.write(torn[:20])
    ledger.refresh()
    assert not ledger.has("c") and ledger.kafka_offsets("events", "k.events")[0] == 10
    with path.open("ab") as fh:
        fh.write(torn[20:])  # the rest of the line arrives (a writer mid-append)
    ledger.refresh()
    assert ledger.has("c") and ledger.kafka_offsets("events", "k.events") == {0: 25, 1: 4}
    assert ledger.kafka_offsets("events", "other") == {}


def test_append_repairs_a_torn_line_and_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "_ledger.jsonl"
    path.write_bytes(line("a") + b'{"id": "tor')
    ledger = Ledger(path)
    ledger.refresh()
    ledger.append(json.loads(line("b", **kafka({"2": [5, 9]}))))
    assert [e["id"] for e in ledger.entries()] == ["a", "b"]
    assert ledger.has("b") and ledger.kafka_offsets("events", "k.events") == {2: 9}

    replacement = tmp_path / "new.jsonl"
    replacement.write_bytes(line("z"))
    replacement.replace(path)
    ledger.refresh()
    assert ledger.has("z") and not ledger.has("a")
    assert ledger.kafka_offsets("events", "k.events") == {}
