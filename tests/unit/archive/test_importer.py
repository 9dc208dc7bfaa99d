"""The importer keeps every valid record, dead-letters every corrupt one, and never doubles data."""

from __future__ import annotations

import io
import json
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

from udf.archive.importer import Importer
from udf.archive.journal import ArchiveWriter
from udf.archive.layout import HOUR_MS, ArchiveLayout
from udf.archive.partitioner import partition_of
from udf.errors import InputError
from udf.home import Home

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z

CORRUPT_SAMPLES = [
    '{"user_id": 3, "event_type": "click", "ts": ',
    "[1, 2, 3]",
    '{"event_type": "click", "ts": 1767225600000}',
    '{"user_id": "3", "event_type": "click", "ts": 1767225600000}',
    '{"user_id": 3, "event_type": "click", "ts": 1767225600000.5}',
    "not json at all",
]


def make_events(
    n_valid: int, corrupt_share: float, seed: int = 1
) -> tuple[list[str], list[dict], list[str]]:
    """Lines in file order, the valid records, and the corrupt lines, shuffled together."""
    rng = random.Random(seed)
    valid = [
        {
            "user_id": rng.randrange(5_000),
            "event_type": rng.choice(["click", "search", "impression"]),
            "ts": T0 + rng.randrange(3 * 24 * HOUR_MS),
            **({"country": rng.choice(["us", "de"])} if rng.random() < 0.3 else {}),
        }
        for _ in range(n_valid)
    ]
    corrupt = [rng.choice(CORRUPT_SAMPLES) for _ in range(round(n_valid * corrupt_share))]
    tagged = [("v", json.dumps(r)) for r in valid] + [("c", c) for c in corrupt]
    rng.shuffle(tagged)
    lines = [text for _, text in tagged]
    valid_in_order = [json.loads(t) for kind, t in tagged if kind == "v"]
    corrupt_in_order = [t for kind, t in tagged if kind == "c"]
    return lines, valid_in_order, corrupt_in_order


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def archived_records(home: Home, topic: str = "events") -> list[tuple[Path, dict]]:
    layout = ArchiveLayout(home.archive)
    return [
        (f, json.loads(line))
        for f in layout.data_files(topic)
        for line in f.read_text().splitlines()
    ]


def archive_bytes(home: Home) -> dict[str, bytes]:
    return {
        str(p.relative_to(home.archive)): p.read_bytes()
        for p in sorted(home.archive.rglob("part-*.jsonl"))
    }


def test_one_percent_corrupt_keeps_every_valid_record(home: Home, tmp_path: Path) -> None:
    lines, valid, corrupt = make_events(20_000, 0.01)
    source = write_lines(tmp_path / "events.jsonl", lines)

    [report] = Importer(home).import_files("events", [str(source)])

    assert report.records == len(valid) == 20_000
    assert report.corrupt == len(corrupt) == 200
    assert sum(report.corrupt_by_kind.values()) == 200
    archived = archived_records(home)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert Counter(key(r) for _, r in archived) == Counter(key(r) for r in valid)
    dead = [json.loads(line) for line in Path(report.deadletter).read_text().splitlines()]
    assert [d["raw"] for d in dead] == corrupt
    assert all(d["reason"] and d["kind"] and d["source"] == str(source) for d in dead)
    assert [lines[d["line"] - 1] for d in dead] == corrupt  # line numbers point at the lines


def test_records_land_in_their_hour_and_partition_in_arrival_order(
    home: Home, tmp_path: Path
) -> None:
    lines, valid, _ = make_events(3_000, 0.0, seed=2)
    Importer(home).import_files("events", [str(write_lines(tmp_path / "e.jsonl", lines))])
    layout = ArchiveLayout(home.archive)

    def target(r: dict) -> Path:
        return layout.part_file("events", r["ts"] // HOUR_MS, partition_of(r["user_id"], 8))

    expected: dict[Path, list[dict]] = {}
    for record in valid:  # input order is arrival order
        expected.setdefault(target(record), []).append(record)
    found: dict[Path, list[dict]] = {}
    for path, record in archived_records(home):
        found.setdefault(path, []).append(record)
    assert found == expected


def test_importing_the_same_file_twice_changes_nothing(home: Home, tmp_path: Path) -> None:
    lines, _, _ = make_events(2_000, 0.01, seed=3)
    source = write_lines(tmp_path / "events.jsonl", lines)
    copy = write_lines(tmp_path / "renamed-copy.jsonl", lines)
    importer = Importer(home)
    [first] = importer.import_files("events", [str(source)])
    before = archive_bytes(home)

    second, third = importer.import_files("events", [str(source), str(copy)])

    assert second.duplicate_of == first.import_id
    assert third.duplicate_of == first.import_id
    assert archive_bytes(home) == before
    assert len(list((home.deadletter / "events").iterdir())) == 1


def test_a_new_file_appends_after_existing_records(home: Home, tmp_path: Path) -> None:
    a_lines, _, _ = make_events(1_000, 0.0, seed=4)
    b_lines, _, _ = make_events(1_000, 0.0, seed=5)
    importer = Importer(home)
    importer.import_files("events", [str(write_lines(tmp_path / "a.jsonl", a_lines))])
    importer.import_files("events", [str(write_lines(tmp_path / "b.jsonl", b_lines))])
    assert len(archived_records(home)) == 2_000


def test_stdin_blank_lines_and_crlf(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"user_id": 1, "event_type": "a", "ts": 1767225600005}\r\n\r\n   \n{"user_id": 2, "event_type": "b", "ts": 1767225600006}'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    [report] = Importer(home).import_files("events", ["-"])
    assert (report.records, report.corrupt, report.lines) == (2, 0, 2)
    assert report.source == "<stdin>"


def test_crash_before_commit_leaves_nothing(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines, _, _ = make_events(1_000, 0.01, seed=6)
    source = write_lines(tmp_path / "e.jsonl", lines)
    importer = Importer(home)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ArchiveWriter, "commit", boom)
    with pytest.raises(KeyboardInterrupt):
        importer.import_files("events", [str(source)])
    assert archive_bytes(home) == {}
    assert not any((home.archive / "_staging").iterdir())
    assert not (home.archive / "_ledger.jsonl").exists()


def test_crash_while_writing_the_journal_leaves_nothing(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed between writing the journal (in the staging) and renaming it into place (the
    # commit point). A SIGKILL runs no cleanup, so the import does not discard its staging.
    import udf.archive.journal as journal_module
    from udf.archive.staging import Stage

    lines, valid, _ = make_events(1_000, 0.01, seed=7)
    source = write_lines(tmp_path / "e.jsonl", lines)
    real_replace, real_discard = journal_module.Path.replace, Stage.discard

    def die_on_journal_rename(self: Path, target):
        if Path(target).parent.name == "_journal":
            raise KeyboardInterrupt
        return real_replace(self, target)

    monkeypatch.setattr(journal_module.Path, "replace", die_on_journal_rename)
    monkeypatch.setattr(Stage, "discard", lambda self: None)
    with pytest.raises(KeyboardInterrupt):
        Importer(home).import_files("events", [str(source)])
    monkeypatch.setattr(journal_module.Path, "replace", real_replace)
    monkeypatch.setattr(Stage, "discard", real_discard)
    assert list((home.archive / "_staging").iterdir())  # the torn import is there

    assert Importer(home).recover() == 0
    assert not list((home.archive / "_journal").iterdir())
    assert not any((home.archive / "_staging").iterdir())
    assert archive_bytes(home) == {}
    Importer(home).import_files("events", [str(source)])
    assert sum(b.count(b"\n") for b in archive_bytes(home).values()) == len(valid)


def test_crash_mid_apply_is_rolled_forward_exactly_once(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import udf.archive.journal as journal_module

    lines, valid, _ = make_events(3_000, 0.01, seed=7)
    source = write_lines(tmp_path / "e.jsonl", lines)
    clean_home = Home.resolve(tmp_path / "clean").ensure()
    Importer(clean_home).import_files("events", [str(source)])

    real_append = journal_module._append_exactly
    calls = {"n": 0}

    def torn_append(staged, segments, final: Path, size_before: int) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # half-write the fifth target, then die
            offset, _ = segments[0]
            staged.seek(offset)
            with final.open("ab") as fh:
                fh.write(staged.read(37))
            raise KeyboardInterrupt
        real_append(staged, segments, final, size_before)

    monkeypatch.setattr(journal_module, "_append_exactly", torn_append)
    with pytest.raises(KeyboardInterrupt):
        Importer(home).import_files("events", [str(source)])
    monkeypatch.setattr(journal_module, "_append_exactly", real_append)

    assert Importer(home).recover() == 1
    assert archive_bytes(home) == archive_bytes(clean_home)
    # the file counts as imported now: importing it again is a no-op
    [again] = Importer(home).import_files("events", [str(source)])
    assert again.duplicate_of is not None
    assert len(archived_records(home)) == len(valid)


def test_torn_ledger_line_is_repaired(home: Home, tmp_path: Path) -> None:
    importer = Importer(home)
    importer.import_files("events", [str(write_lines(tmp_path / "a.jsonl", make_events(10, 0)[0]))])
    with importer.ledger.path.open("ab") as fh:
        fh.write(b'{"id": "torn')
    importer.import_files(
        "events", [str(write_lines(tmp_path / "b.jsonl", make_events(10, 0, seed=9)[0]))]
    )
    assert len(list(importer.ledger.entries())) == 2
    assert all(line.startswith(b"{") for line in importer.ledger.path.read_bytes().splitlines())


def test_partition_count_is_fixed_at_first_import(home: Home, tmp_path: Path) -> None:
    source = write_lines(tmp_path / "a.jsonl", make_events(10, 0)[0])
    Importer(home).import_files("events", [str(source)], partitions=4)
    with pytest.raises(InputError, match="already has 4 partitions"):
        Importer(home).import_files("events", [str(source)], partitions=8)


def test_missing_file_and_unknown_topic_are_input_errors(home: Home, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        Importer(home).import_files("events", [str(tmp_path / "nope.jsonl")])
    with pytest.raises(InputError, match="unknown topic"):
        Importer(home).import_files("clicks", [str(tmp_path / "nope.jsonl")])


def _crash_after_journal(monkeypatch: pytest.MonkeyPatch, home: Home, source: Path) -> None:
    """Run an import that dies right after its journal is written (the commit point)."""

    def die(self, journal):
        raise KeyboardInterrupt

    monkeypatch.setattr(ArchiveWriter, "_apply", die)
    with pytest.raises(KeyboardInterrupt):
        Importer(home).import_files("events", [str(source)])
    monkeypatch.undo()


def test_lost_staging_is_rolled_back_and_the_file_can_be_imported_again(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_lines(tmp_path / "first.jsonl", make_events(500, 0.0, seed=10)[0])
    Importer(home).import_files("events", [str(first)])
    before = archive_bytes(home)
    lines, valid, _ = make_events(2_000, 0.01, seed=11)
    source = write_lines(tmp_path / "e.jsonl", lines)
    _crash_after_journal(monkeypatch, home, source)
    # a power loss kept the journal but not all of the unsynced staged bytes
    [staged] = (home.archive / "_staging").rglob("data.bin")
    with staged.open("r+b") as fh:
        fh.truncate(staged.stat().st_size // 2)

    assert Importer(home).recover() == 1

    assert archive_bytes(home) == before  # nothing of the lost import remains
    assert not list((home.archive / "_journal").glob("*.json"))
    [again] = Importer(home).import_files("events", [str(source)])
    assert again.duplicate_of is None and again.records == len(valid)
    assert len(archived_records(home)) == 500 + len(valid)


def test_crash_after_the_ledger_line_does_not_apply_twice(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import udf.archive.journal as journal_module

    lines, valid, _ = make_events(1_000, 0.01, seed=12)
    source = write_lines(tmp_path / "e.jsonl", lines)
    real_unlink = Path.unlink

    def die_on_journal_unlink(self: Path, missing_ok: bool = False) -> None:
        if self.parent.name == "_journal":
            raise KeyboardInterrupt
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(journal_module.Path, "unlink", die_on_journal_unlink)
    with pytest.raises(KeyboardInterrupt):
        Importer(home).import_files("events", [str(source)])
    monkeypatch.undo()

    assert Importer(home).recover() == 1
    assert len(archived_records(home)) == len(valid)
    assert len(list(Importer(home).ledger.entries())) == 1


def test_byte_order_mark_is_not_a_corrupt_record(home: Home, tmp_path: Path) -> None:
    source = tmp_path / "bom.jsonl"
    source.write_bytes(b'\xef\xbb\xbf{"user_id": 1, "event_type": "a", "ts": 1767225600005}\n')
    [report] = Importer(home).import_files("events", [str(source)])
    assert (report.records, report.corrupt) == (1, 0)


def test_a_pipe_is_imported_like_a_file(home: Home, tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "events.pipe"
    os.mkfifo(fifo)
    lines, valid, _ = make_events(300, 0.0, seed=13)
    writer = threading.Thread(
        target=lambda: fifo.write_text("".join(line + "\n" for line in lines))
    )
    writer.start()
    [report] = Importer(home).import_files("events", [str(fifo)])
    writer.join()
    assert report.records == len(valid) == 300


def test_a_moved_home_recovers_into_itself(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ledger and journals kept absolute paths: a home moved after a crash recovered its
    # dead letters into the old place (re-creating it). Paths are now relative to the home.
    lines, valid, corrupt = make_events(500, 0.02, seed=14)
    source = write_lines(tmp_path / "e.jsonl", lines)
    _crash_after_journal(monkeypatch, home, source)
    moved = Home.resolve(tmp_path / "moved")
    home.root.rename(moved.root)

    assert Importer(moved).recover() == 1

    assert not home.root.exists()  # nothing was written to the old place
    [entry] = Importer(moved).ledger.entries()
    assert entry["deadletter"] == f"deadletter/events/{entry['id']}.jsonl"
    assert (moved.root / entry["deadletter"]).read_text().count("\n") == len(corrupt) > 0
    assert len(archived_records(moved)) == len(valid)


def test_a_directory_is_named_as_one(home: Home, tmp_path: Path) -> None:
    # It was reported as "no such file".
    with pytest.raises(
        InputError, match=r"is a directory: name the files to import \(for example .*\*\.jsonl\)"
    ):
        Importer(home).import_files("events", [str(tmp_path)])
