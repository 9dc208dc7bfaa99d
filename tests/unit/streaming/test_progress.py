"""Progress for people: records, corrupt and late per topic, rows written, lag."""

from __future__ import annotations

import json
from pathlib import Path

from streaming.progress import line, read


def test_reports_of_sink_subtasks_merge(tmp_path: Path) -> None:
    topics = {"events": {"records": 1200, "corrupt": 3, "max_ts": 10_000},
              "activations": {"records": 50, "corrupt": 0, "max_ts": 9_000}}  # fmt: skip
    for i, rows in enumerate((7, 5)):
        report = {"topics": topics, "event_types": ["click"], "rows_written": rows}
        (tmp_path / f"sink-{i}.json").write_text(json.dumps(report))
    (tmp_path / "sink-2.json").write_text("{torn")  # a half-written file is skipped
    merged = read(tmp_path, {"events": 4})
    assert merged["rows_written"] == 12
    assert line(merged, now_ms=10_000 + 3 * 3_600_000) == (
        "events 1,200 read (3 corrupt, 4 late) | activations 50 read (0 corrupt, 0 late) "
        "| rows written 12 | lag 3h"
    )
    assert line(read(tmp_path / "none"), now_ms=0) == (
        "events 0 read | activations 0 read | rows written 0 | lag -"
    )
