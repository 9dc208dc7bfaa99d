"""Closed-hour markers: a topic is complete through a time when its producer says so.

An hour's files keep growing while late records arrive (docs/archive.md), so "files exist"
never means "the hour is complete". Like Hive's ``_SUCCESS`` markers, the producer (the
importer's caller, the streaming archiver, an operator) declares a topic *closed through*
a time once nothing earlier will arrive: ``<archive>/<topic>/_closed.json`` holds that
instant (exclusive, epoch ms). The framework's readiness check reads only this marker.

The marker never moves backwards (a late correction would otherwise make finished
metric-days look unfinished, and a stale producer could undo a newer seal) unless forced;
it is written atomically (a temporary file, fsync, rename) under a per-topic lock, so a
reader sees the old marker or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from udf.archive.layout import TOPICS, ArchiveLayout
from udf.archive.locks import file_lock, fsync_dir
from udf.errors import ArchiveError, InputError
from udf.times import check_day

CLOSED_FILE = "_closed.json"
_THROUGH = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}))?")


@dataclass(frozen=True)
class SealResult:
    """What a seal did: the marker before and after (``None``: the topic was never sealed)."""

    topic: str
    previous_ms: int | None
    closed_through_ms: int
    changed: bool

    @property
    def closed_through(self) -> datetime:
        return ms_to_datetime(self.closed_through_ms)


def parse_through(text: str) -> int:
    """``YYYY-MM-DD`` (that whole day) or ``YYYY-MM-DDTHH`` (through that hour) → exclusive end, ms.

    "Closed through 2026-01-03" means every hour of that day is complete, so the marker
    holds 2026-01-04T00:00 UTC; "through 2026-01-03T05" holds 06:00.
    """
    match = _THROUGH.fullmatch(text.strip())
    if not match:
        raise InputError(f"--through {text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH (UTC)")
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError:
        raise InputError(f"--through {text!r}: not a date") from None
    check_day(day, "--through")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if match.group(2) is None:
        end = start + timedelta(days=1)
    else:
        hour = int(match.group(2))
        if hour > 23:
            raise InputError(f"--through {text!r}: the hour must be 00-23")
        end = start + timedelta(hours=hour + 1)
    return datetime_to_ms(end)


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def marker_path(archive: Path, topic: str) -> Path:
    return ArchiveLayout(archive).topic_dir(topic) / CLOSED_FILE


def closed_through(archive: Path, topic: str) -> int | None:
    """The instant (exclusive, epoch ms) before which ``topic`` is complete; ``None`` if never sealed."""
    path = marker_path(archive, topic)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"{path} is unreadable: {exc}") from exc
    value = raw.get("closed_through_ms") if isinstance(raw, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArchiveError(f"{path} has no integer 'closed_through_ms'")
    return value


def closed_through_all(archive: Path) -> dict[str, int | None]:
    """Every topic's marker (readiness reads them once per plan, not once per metric)."""
    return {topic: closed_through(archive, topic) for topic in TOPICS}


def seal(archive: Path, topic: str, through_ms: int, *, force: bool = False) -> SealResult:
    """Declare ``topic`` complete before ``through_ms``; refuse to move the marker back unless ``force``."""
    path = marker_path(archive, topic)
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.parent / ".closed.lock"):
        previous = closed_through(archive, topic)
        if previous is not None and through_ms < previous and not force:
            raise InputError(
                f"{topic} is already closed through {ms_to_datetime(previous):%Y-%m-%dT%H:%M}Z; "
                f"moving it back to {ms_to_datetime(through_ms):%Y-%m-%dT%H:%M}Z needs --force"
            )
        if previous == through_ms:
            return SealResult(topic, previous, through_ms, changed=False)
        body = {
            "topic": topic,
            "closed_through_ms": through_ms,
            "closed_through": ms_to_datetime(through_ms).isoformat(),
            "sealed_at": datetime.now(UTC).isoformat(),
        }
        tmp = path.with_name(f".{CLOSED_FILE}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.write(json.dumps(body, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
        fsync_dir(path.parent)
        return SealResult(topic, previous, through_ms, changed=True)
