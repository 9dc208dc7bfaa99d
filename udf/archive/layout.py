"""Where archived records live, and the per-topic settings fixed at a topic's first import."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from udf.errors import ArchiveError, InputError

TOPICS = ("events", "activations")
DEFAULT_PARTITIONS = 8
EXTENSION = "jsonl"
HOUR_MS = 3_600_000
JOURNAL = "_journal"  # folders and files of the archive's root, beside the topics
LEDGER = "_ledger.jsonl"


def hour_label(hour_index: int) -> str:
    """``YYYY-MM-DDTHH`` (UTC) of an hour counted since the epoch."""
    return f"{datetime.fromtimestamp(hour_index * 3600, tz=UTC):%Y-%m-%dT%H}"


@dataclass(frozen=True)
class TopicSettings:
    """Fixed when the topic is first written: changing the partition count would move users."""

    partitions: int
    format: str = EXTENSION
    partitioner: str = "kafka-murmur2(user_id as 8-byte big-endian long)"


@dataclass(frozen=True)
class ArchiveLayout:
    root: Path

    def topic_dir(self, topic: str) -> Path:
        if topic not in TOPICS:
            raise InputError(f"unknown topic {topic!r}: expected one of {', '.join(TOPICS)}")
        return self.root / topic

    def hour_dir(self, topic: str, hour_index: int) -> Path:
        """The folder of one clock hour; ``hour_index`` counts hours since the epoch."""
        start = datetime.fromtimestamp(hour_index * 3600, tz=UTC)
        return self.topic_dir(topic) / f"dt={start:%Y-%m-%d}" / f"hour={start:%H}"

    def part_file(self, topic: str, hour_index: int, partition: int) -> Path:
        return self.hour_dir(topic, hour_index) / f"part-{partition}.{EXTENSION}"

    @property
    def staging(self) -> Path:
        return self.root / "_staging"

    @property
    def journal(self) -> Path:
        return self.root / JOURNAL

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER

    @property
    def lock_file(self) -> Path:
        """Held by an import from start to end: imports run one at a time."""
        return self.root / ".lock"

    @property
    def apply_lock(self) -> Path:
        """Held by an import while it changes data files; shared by readers taking a snapshot."""
        return self.root / ".apply.lock"

    def settings(self, topic: str, partitions: int | None = None) -> TopicSettings:
        """Read the topic's settings, creating them on first use (``partitions`` or the default)."""
        path = self.topic_dir(topic) / "_topic.json"
        if path.exists():
            try:
                stored = TopicSettings(**json.loads(path.read_text()))
            except (ValueError, TypeError) as exc:
                raise ArchiveError(f"{path} is unreadable: {exc}") from exc
            if partitions is not None and partitions != stored.partitions:
                raise InputError(
                    f"topic {topic!r} already has {stored.partitions} partitions; "
                    f"it cannot be re-imported with {partitions}"
                )
            return stored
        if partitions is not None and partitions < 1:
            raise InputError("--partitions must be at least 1")
        settings = TopicSettings(partitions=partitions or DEFAULT_PARTITIONS)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings.__dict__, indent=2) + "\n")
        tmp.replace(path)
        return settings

    def data_files(self, topic: str) -> list[Path]:
        return sorted(self.topic_dir(topic).glob(f"dt=*/hour=*/part-*.{EXTENSION}"))
