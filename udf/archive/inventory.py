"""What the archive holds: per topic, the hours and files on disk and the records the ledger counted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from udf.archive.layout import TOPICS, ArchiveLayout
from udf.archive.ledger import Ledger


@dataclass(frozen=True)
class TopicInventory:
    topic: str
    partitions: int | None
    imports: int
    records: int
    corrupt: int
    hours: int
    files: int
    bytes: int
    first_hour: str | None
    last_hour: str | None


def inventory(archive: Path) -> list[TopicInventory]:
    layout = ArchiveLayout(archive)
    entries = list(Ledger(layout.ledger).entries())
    rows = []
    for topic in TOPICS:
        topic_dir = layout.topic_dir(topic)
        files = layout.data_files(topic) if topic_dir.exists() else []
        hours = sorted({_hour_key(f) for f in files})
        mine = [e for e in entries if e["topic"] == topic]
        rows.append(
            TopicInventory(
                topic=topic,
                partitions=layout.settings(topic).partitions if (topic_dir / "_topic.json").exists() else None,
                imports=len(mine),
                records=sum(e["records"] for e in mine),
                corrupt=sum(e["corrupt"] for e in mine),
                hours=len(hours),
                files=len(files),
                bytes=sum(f.stat().st_size for f in files),
                first_hour=hours[0] if hours else None,
                last_hour=hours[-1] if hours else None,
            )
        )
    return rows


def event_types(archive: Path, before_ms: int | None = None) -> list[str] | None:
    """The event types the archive holds (that occur before ``before_ms``), from the ledger.

    Each import recorded its event types with the first hour they occur in, so this reads
    one small file, not the data. ``None`` when an import predates that record (the
    caller must then look at the data itself).
    """
    found: set[str] = set()
    for entry in Ledger(ArchiveLayout(archive).ledger).entries():
        if entry["topic"] != "events":
            continue
        if "event_types" not in entry:
            return None
        found.update(
            kind for kind, hour in entry["event_types"].items()
            if before_ms is None or _hour_ms(hour) < before_ms
        )  # fmt: skip
    return sorted(found)


def _hour_ms(label: str) -> int:
    from datetime import UTC, datetime

    moment = datetime.strptime(label, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000


def _hour_key(path: Path) -> str:
    hour = path.parent.name.removeprefix("hour=")
    day = path.parent.parent.name.removeprefix("dt=")
    return f"{day}T{hour}"


def dead_letters(deadletter_root: Path, topics: tuple[str, ...] = TOPICS) -> Iterator[dict]:
    """Every dead-lettered line with its topic and import id, oldest import first."""
    for topic in topics:
        for path in sorted((deadletter_root / topic).glob("*.jsonl")):
            with path.open("rb") as fh:
                for line in fh:
                    yield {"topic": topic, "import_id": path.stem, **orjson.loads(line)}
