"""The archive part's alignment without Flink: cutting history into slices, the barrier."""

from __future__ import annotations

import json
from pathlib import Path

from streaming.source import PartitionFeed
from streaming.source.slices import AlignedFeed, TopicProgress
from udf.archive.importer import Importer
from udf.home import Home

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
MINUTE = 60_000


def _import(home: Home, tmp_path: Path, topic: str, minutes: range) -> list[bytes]:
    fields = {"event_type": "click"} if topic == "events" else {"experiment": "x", "group": "a"}
    lines = [json.dumps({"user_id": 7, **fields, "ts": T0 + m * MINUTE}).encode() for m in minutes]
    (tmp_path / f"{topic}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    Importer(home).import_files(topic, [str(tmp_path / f"{topic}.jsonl")], partitions=1)
    return lines


def _fed(feed: PartitionFeed, topic: str) -> list[bytes]:
    return [
        line
        for f in sorted((feed.root / topic).rglob("*.jsonl"))
        for line in f.read_bytes().splitlines()
    ]


def test_slices_cut_history_at_their_end_in_every_topic(home: Home, tmp_path: Path) -> None:
    events = _import(home, tmp_path, "events", range(0, 90, 1))  # 0..89 minutes
    activations = _import(home, tmp_path, "activations", range(0, 90, 10))
    feed = PartitionFeed(tmp_path / "feed", home.archive)
    feed.prepare()
    progress: dict[str, TopicProgress] = {}
    aligner = AlignedFeed(feed, 20 * MINUTE, read=lambda: progress)  # slices of 10 minutes

    first = aligner.step()
    assert first is not None and first.lines == {"events": 10, "activations": 1}
    assert _fed(feed, "events") == events[:10] and _fed(feed, "activations") == activations[:1]
    second = aligner.step()  # two slices in flight before anything is read
    assert second is not None and second.lines == {"events": 10, "activations": 1}
    assert aligner.step() is None  # the first slice is not read yet
    progress["events"] = TopicProgress(10, T0 + 9 * MINUTE, T0 + 9 * MINUTE)
    assert aligner.step() is None  # activations not yet
    progress["activations"] = TopicProgress(1, T0, T0 - 1)  # read, but its watermark lags
    assert aligner.step() is None
    progress["activations"] = TopicProgress(1, T0, T0)
    third = aligner.step()
    assert third is not None and third.lines == {"events": 10, "activations": 1}
    assert _fed(feed, "events") == events[:30]


def test_a_topic_that_read_everything_published_holds_nothing_back(
    home: Home, tmp_path: Path
) -> None:
    _import(home, tmp_path, "events", range(0, 90, 1))
    _import(home, tmp_path, "activations", range(0, 5))  # only in the first slice
    feed = PartitionFeed(tmp_path / "feed", home.archive)
    feed.prepare()
    progress: dict[str, TopicProgress] = {}
    aligner = AlignedFeed(feed, 20 * MINUTE, read=lambda: progress)
    aligner.step()
    aligner.step()
    progress["activations"] = TopicProgress(5, T0 + 4 * MINUTE, None)  # no watermark seen since
    progress["events"] = TopicProgress(10, T0 + 9 * MINUTE, T0 + 9 * MINUTE)
    assert aligner.step() is not None
    steps = 0
    while not aligner.done:  # everything read as soon as it is fed: the slices run to the end
        fed = {r.number: r.lines for r in feed.rounds()}
        total = sum(n.get("events", 0) for n in fed.values())
        progress["events"] = TopicProgress(
            total, T0 + (total - 1) * MINUTE, T0 + (total - 1) * MINUTE
        )
        aligner.step()
        steps += 1
    assert len(_fed(feed, "events")) == 90 and steps <= 10


def test_a_resumed_feed_waits_for_what_it_fed_then_carries_on(home: Home, tmp_path: Path) -> None:
    events = _import(home, tmp_path, "events", range(0, 40))
    feed = PartitionFeed(tmp_path / "feed", home.archive, topics=("events",))
    feed.prepare()
    read = {"events": TopicProgress(0)}
    AlignedFeed(feed, 20 * MINUTE, read=lambda: read).step()  # 10 minutes fed, then a restart
    again = AlignedFeed(feed, 20 * MINUTE, read=lambda: read)
    assert again.step() is None
    read["events"] = TopicProgress(10, T0 + 9 * MINUTE, T0 + 9 * MINUTE)
    assert again.step() is not None
    assert _fed(feed, "events") == events[:20]
