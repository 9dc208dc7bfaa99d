"""What the archive holds: per topic, the committed hours and files and the records the ledger counted.

Both come from one committed view (:mod:`udf.archive.view`), so the files and the record
counts always describe the same imports, whatever import is running or crashed meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from udf.archive.layout import TOPICS, ArchiveLayout, hour_label
from udf.archive.view import committed_view
from udf.home import Home


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
                partitions=layout.settings(topic).partitions if (topic_dir / "_topic.json").exists() else None,
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


def dead_letters(home: Home, topics: tuple[str, ...] = TOPICS) -> Iterator[dict]:
    """Every dead-lettered line of the committed imports, with its topic and import id,
    oldest import first (an unfinished import's dead letters are left out with its data)."""
    committed = {entry["id"] for entry in committed_view(home, ()).imports}
    for topic in topics:
        for path in sorted((home.deadletter / topic).glob("*.jsonl")):
            if path.stem not in committed:
                continue
            with path.open("rb") as fh:
                for line in fh:
                    yield {"topic": topic, "import_id": path.stem, **orjson.loads(line)}
