"""What the archive holds: per topic, the committed hours and files and the records the ledger counted.

Both come from one committed view (:mod:`udf.archive.view`), so the files and the record
counts always describe the same imports, whatever import is running or crashed meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from udf.archive.layout import LEDGER, TOPICS, ArchiveLayout, hour_label
from udf.archive.ledger import parse_lines
from udf.archive.view import committed_view
from udf.home import Home
from udf.location import Location


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
    unfinished: int  # imports in flight or crashed, not counted here (see ``committed_view``)


def inventory(home: Home) -> list[TopicInventory]:
    layout = ArchiveLayout(home.archive)
    view = committed_view(home)
    rows = []
    for topic in TOPICS:
        topic_dir = layout.topic_dir(topic)
        files = view.topic_files(topic)
        hours = [hour_label(h) for h in sorted({f.hour for f in files})]
        mine = [e for e in view.imports if e["topic"] == topic]
        rows.append(
            TopicInventory(
                topic=topic,
                partitions=layout.settings(topic).partitions
                if (topic_dir / "_topic.json").exists()
                else None,
                imports=len(mine),
                records=sum(e["records"] for e in mine),
                corrupt=sum(e["corrupt"] for e in mine),
                hours=len(hours),
                files=len(files),
                bytes=sum(f.size for f in files),
                first_hour=hours[0] if hours else None,
                last_hour=hours[-1] if hours else None,
                unfinished=sum(1 for e in view.hidden if e["topic"] == topic),
            )
        )
    return rows


def event_types(archive: Path | Location, before_ms: int | None = None) -> list[str] | None:
    """The event types the archive holds (that occur before ``before_ms``), from the ledger.

    Each import recorded its event types with the first hour they occur in, so this reads
    one small file, not the data (through ``pyarrow.fs``: the archive may be anywhere).
    ``None`` when an import predates that record (the caller must then look at the data
    itself).
    """
    root = archive if isinstance(archive, Location) else Location.of(archive)
    found: set[str] = set()
    for entry in parse_lines((root.read_bytes(LEDGER) or b"").splitlines()):
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


def dead_letters(home: Home, topics: tuple[str, ...] = TOPICS) -> Iterator[dict]:
    """Every dead-lettered line of the committed imports, with its topic and import id,
    oldest import first (an unfinished import's dead letters are left out with its data)."""
    # Ledger order: import ids start with the second they began, so two imports of one
    # second would sort by their random suffix.
    committed = [entry["id"] for entry in committed_view(home, ()).imports]
    for topic in topics:
        for import_id in committed:
            path = home.deadletter / topic / f"{import_id}.jsonl"
            if not path.is_file():
                continue
            with path.open("rb") as fh:
                for line in fh:
                    yield {"topic": topic, "import_id": import_id, **orjson.loads(line)}
