"""Progress of a running pipeline: what the results sink reports, as the command line prints it.

The results sink writes ``<state>/progress/sink-<subtask>.json`` (records read and corrupt
per topic, the latest event time, the event types seen, rows written); the command line
reads and merges them every few seconds, with the late records the feed counted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def read(folder: Path, late: dict[str, int] | None = None) -> dict[str, Any]:
    """The merged progress reports (empty numbers before the first one) and ``late``."""
    topics: dict[str, dict[str, Any]] = {}
    rows = 0
    types: set[str] = set()
    for path in sorted(folder.glob("sink-*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows += report.get("rows_written", 0)
        types.update(report.get("event_types", ()))
        for topic, numbers in report.get("topics", {}).items():
            topics[topic] = numbers  # every subtask sees the same broadcast numbers
    return {"topics": topics, "rows_written": rows, "event_types": sorted(types),
            "late": dict(late or {})}  # fmt: skip


def line(report: dict[str, Any], now_ms: int | None = None) -> str:
    """One line for people: records read, corrupt, late per topic; rows written; lag."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    parts = []
    latest = None
    for topic in ("events", "activations"):
        t = report["topics"].get(topic)
        if not t:
            parts.append(f"{topic} 0 read")
            continue
        late = report.get("late", {}).get(topic, 0)
        parts.append(f"{topic} {t['records']:,} read ({t['corrupt']:,} corrupt, {late:,} late)")
        if t.get("max_ts") is not None:
            latest = max(latest or 0, t["max_ts"])
    parts.append(f"rows written {report['rows_written']:,}")
    parts.append(f"lag {_duration(now_ms - latest)}" if latest is not None else "lag -")
    return " | ".join(parts)


def _duration(ms: int) -> str:
    seconds = max(0, ms) // 1000
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
