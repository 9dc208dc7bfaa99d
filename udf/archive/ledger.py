"""The ledger: one JSON line per committed import, the archive's memory of what it holds.

It answers "was this exact file imported already?" (by topic and SHA-256 of its bytes),
"up to which offset is each Kafka partition archived?" (the Kafka archiver's offsets,
committed in the same line as the data they describe) and gives record counts without
rescanning the data. A crash can leave a torn last line; readers skip it and the next
append repairs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson


class Ledger:
    """The ledger file, with an in-memory index of it.

    :meth:`refresh` indexes what was appended since the last call (the whole file the first
    time), so a long-running writer pays only for new lines. Writers call it after taking
    the archive lock, so within one locked import the index is exact and :meth:`append`
    keeps it so.
    """

    def __init__(self, path: Path):
        self.path = path
        self._by_hash: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids: set[str] = set()
        self._offsets: dict[tuple[str, str], dict[int, int]] = {}
        self._indexed = 0  # bytes of the file indexed so far, always at the end of a line
        self._identity: tuple[int, int] | None = None

    def refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._reset(None)
            return
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._indexed:  # replaced or rewritten
            self._reset(identity)
        with self.path.open("rb") as fh:
            fh.seek(self._indexed)
            data = fh.read()
        complete = data.rfind(b"\n") + 1  # a torn last line waits for its repair
        for entry in parse_lines(data[:complete].splitlines()):
            self._index(entry)
        self._indexed += complete

    def _reset(self, identity: tuple[int, int] | None) -> None:
        self._by_hash.clear()
        self._ids.clear()
        self._offsets.clear()
        self._indexed = 0
        self._identity = identity

    def _index(self, entry: dict[str, Any]) -> None:
        self._ids.add(entry["id"])
        if entry.get("sha256"):
            self._by_hash.setdefault((entry["topic"], entry["sha256"]), entry)
        kafka = entry.get("kafka")
        if kafka:
            archived = self._offsets.setdefault((entry["topic"], kafka["topic"]), {})
            for partition, (_, next_offset) in kafka["offsets"].items():
                p = int(partition)
                archived[p] = max(archived.get(p, 0), next_offset)

    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            yield from parse_lines(fh)

    def find(self, topic: str, sha256: str) -> dict[str, Any] | None:
        """The first import of these exact bytes into ``topic`` (as of the last refresh)."""
        return self._by_hash.get((topic, sha256))

    def has(self, import_id: str) -> bool:
        return import_id in self._ids

    def kafka_offsets(self, topic: str, kafka_topic: str) -> dict[int, int]:
        """Per partition of ``kafka_topic``, the next offset to archive into ``topic``."""
        return dict(self._offsets.get((topic, kafka_topic), {}))

    def append(self, entry: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":  # drop a torn line left by a crash, nothing else
                    fh.seek(0)
                    fh.truncate(fh.read().rfind(b"\n") + 1)
                    fh.seek(0, os.SEEK_END)
            fh.write(orjson.dumps(entry) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.refresh()


def parse_lines(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The entries of ledger lines, skipping a torn one."""
    for line in lines:
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn last line from a crash; the journal re-appends it
