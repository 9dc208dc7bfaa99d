"""The feed copies every committed archive byte exactly once, in order, crash-safely."""

from __future__ import annotations

import json
from pathlib import Path

from streaming.feed import Feed, committed_sizes
from udf.archive.importer import Importer
from udf.archive.layout import HOUR_MS
from udf.home import Home

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def _import(home: Home, tmp_path: Path, name: str, records: list[dict]) -> None:
    source = tmp_path / name
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    Importer(home).import_files("events", [str(source)], partitions=1)


def _event(user: int, ts: int) -> dict:
    return {"user_id": user, "event_type": "click", "ts": ts}


def _fed(feed: Feed) -> bytes:
    """Everything the feed holds for events, in round order."""
    return b"".join(
        (feed.root / name).read_bytes() for r in feed.rounds() for name in r.files
        if name.startswith("events/")
    )  # fmt: skip


def _archived(home: Home) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((home.archive / "events").rglob("part-*.jsonl")))


def test_rounds_copy_new_bytes_once_and_in_order(home: Home, tmp_path: Path) -> None:
    _import(home, tmp_path, "a.jsonl", [_event(1, T0 + 1), _event(2, T0 + 2)])
    feed = Feed(home.root / "feed", home.archive, topics=("events",))
    feed.prepare()
    first = feed.publish()
    assert first is not None and first.number == 1
    assert _fed(feed) == _archived(home)
    assert feed.publish() is None  # nothing new

    _import(home, tmp_path, "b.jsonl", [_event(1, T0 + 3)])  # appended to the same hour file
    second = feed.publish()
    assert second is not None and second.number == 2
    (chunk,) = second.chunks
    assert chunk.start == first.chunks[0].end  # only the new bytes
    assert _fed(feed) == _archived(home)
    assert feed.offsets() == {("events", chunk.rel): chunk.end}
    visible = sorted(p.name for p in (feed.root / "events").iterdir())
    assert visible == ["r00000001-0000.jsonl", "r00000002-0000.jsonl"]


def test_an_import_in_flight_is_not_fed(home: Home, tmp_path: Path) -> None:
    _import(home, tmp_path, "a.jsonl", [_event(1, T0 + 1)])
    (part,) = (home.archive / "events").rglob("part-*.jsonl")
    committed = part.stat().st_size
    with part.open("ab") as fh:  # an apply half done, its journal still there
        fh.write(b'{"user_id": 1, "event_type": "cl')
    rel = str(part.relative_to(home.archive / "events"))
    journal = home.archive / "_journal"
    journal.mkdir(exist_ok=True)
    (journal / "x.json").write_text(json.dumps(
        {"entry": {"topic": "events", "import_id": "x", "source": "a.jsonl"},
         "targets": [{"rel": rel, "size_before": committed}], "staged_size": 1}
    ))  # fmt: skip
    assert committed_sizes(home.archive, "events") == {rel: committed}
    feed = Feed(home.root / "feed", home.archive, topics=("events",))
    feed.prepare()
    feed.publish()
    assert _fed(feed) == part.read_bytes()[:committed]


def test_recovery_shows_committed_rounds_and_drops_the_rest(home: Home, tmp_path: Path) -> None:
    _import(home, tmp_path, "a.jsonl", [_event(1, T0 + 1)])
    feed = Feed(home.root / "feed", home.archive, topics=("events",))
    feed.prepare()
    round_ = feed.publish()
    assert round_ is not None
    name = round_.files[0].split("/")[1]
    # a crash after the index but before the rename, and one before the index
    (feed.root / "events" / name).rename(feed.root / "events" / f".{name}.tmp")
    (feed.root / "events" / ".r00000002-0000.jsonl.tmp").write_bytes(b"half a round")
    feed.recover()
    assert sorted(p.name for p in (feed.root / "events").iterdir()) == [name]
    assert _fed(feed) == _archived(home)


def test_records_appended_to_an_hour_left_behind_are_late(home: Home, tmp_path: Path) -> None:
    _import(home, tmp_path, "a.jsonl", [_event(1, T0 + 1), _event(1, T0 + 5 * HOUR_MS)])
    feed = Feed(home.root / "feed", home.archive, topics=("events",), lateness_ms=HOUR_MS)
    feed.prepare()
    assert feed.publish().late == {}  # type: ignore[union-attr]  # the first round: nothing late
    _import(home, tmp_path, "b.jsonl", [_event(1, T0 + 2), _event(2, T0 + 3),
                                         _event(3, T0 + 4 * HOUR_MS)])  # fmt: skip
    later = feed.publish()
    assert later is not None
    # hour 0 ended 5 h before hour 5 started (late); hour 4 ended as hour 5 began (within 1 h)
    assert later.late == {"events": 2}
    assert feed.late() == {"events": 2}


def test_retired_rounds_lose_their_files_but_not_their_offsets(home: Home, tmp_path: Path) -> None:
    _import(home, tmp_path, "a.jsonl", [_event(1, T0 + 1), _event(2, T0 + 2)])
    feed = Feed(home.root / "feed", home.archive, topics=("events",), count_lines=True)
    feed.prepare()
    first = feed.publish()
    assert first is not None and first.lines == {"events": 2}
    assert feed.retire(first.number) == 1
    assert not any((feed.root / "events").iterdir())
    _import(home, tmp_path, "b.jsonl", [_event(3, T0 + 3)])
    second = feed.publish()
    assert second is not None and second.lines == {"events": 1}
    assert second.chunks[0].start == first.chunks[0].end  # nothing fed twice
