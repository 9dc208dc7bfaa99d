"""The ledger: one JSON line per committed import, the archive's memory of what it holds.

It answers "was this exact file imported already?" (by topic and SHA-256 of its bytes)
and gives record counts without rescanning the data. A crash can leave a torn last
line; readers skip it and the next append repairs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


class Ledger:
    """The ledger file, with an in-memory index of it for the duplicate checks.

    :meth:`refresh` reads the file once; the importer calls it after taking the archive
    lock, so within one locked import the index is exact and :meth:`append` keeps it so.
    """

    def __init__(self, path: Path):
        self.path = path
        self._by_hash: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids: set[str] = set()

    def refresh(self) -> None:
        self._by_hash.clear()
        self._ids.clear()
        for entry in self.entries():
            self._index(entry)

    def _index(self, entry: dict[str, Any]) -> None:
        self._by_hash.setdefault((entry["topic"], entry["sha256"]), entry)
        self._ids.add(entry["id"])

    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for line in fh:
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line from a crash; the journal re-appends it

    def find(self, topic: str, sha256: str) -> dict[str, Any] | None:
        """The first import of these exact bytes into ``topic`` (as of the last refresh)."""
        return self._by_hash.get((topic, sha256))

    def has(self, import_id: str) -> bool:
        return import_id in self._ids

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
        self._index(entry)
