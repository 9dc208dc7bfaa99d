"""Exact per-topic counts, accumulated while writing, and the ``manifest.json`` document."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udf.workload.corrupt import KINDS

MANIFEST_VERSION = 1


@dataclass
class FileCounts:
    lines: int = 0
    valid: int = 0
    corrupt: int = 0


@dataclass
class TopicStats:
    """Counts of one topic. ``valid`` includes duplicate copies; ``lines = valid + corrupt``."""

    name: str
    lines: int = 0
    valid: int = 0
    corrupt: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    duplicate_copies: int = 0
    late: int = 0
    cross_day: int = 0
    with_value: int = 0
    with_segments: int = 0
    by_group: dict[str, dict[str, int]] = field(default_factory=dict)
    files: dict[str, FileCounts] = field(default_factory=dict)

    @property
    def corrupt_total(self) -> int:
        return sum(self.corrupt.values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lines": self.lines,
            "valid": self.valid,
            "unique": self.valid - self.duplicate_copies,
            "corrupt": self.corrupt_total,
            "corrupt_by_kind": dict(self.corrupt),
            "duplicate_copies": self.duplicate_copies,
            "late": self.late,
            "cross_day": self.cross_day,
        }
        if self.name == "events":
            out["with_value"] = self.with_value
            out["with_segments"] = self.with_segments
        else:
            out["by_experiment_group"] = self.by_group
        out["files"] = {
            name: {"lines": c.lines, "valid": c.valid, "corrupt": c.corrupt}
            for name, c in sorted(self.files.items())
        }
        return out


def write_manifest(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as stable, indented JSON (no timestamps: output is reproducible)."""
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))
