"""Corrupt lines: records a consumer must count and dead-letter (the contract §1).

Each corrupt line is derived from a real record of the same batch, so it looks like the
traffic around it, and is of one of four kinds:

- ``truncated``: a proper prefix of the record's JSON (never empty, never valid JSON);
- ``not_object``: valid JSON that is not an object (the record in an array, a bare number,
  a bare string, ``null``);
- ``missing_field``: the record without one required field;
- ``wrong_type``: a required field of the wrong type (``user_id`` as a string, ``ts`` as a
  non-integral float or a string, ``event_type`` / ``experiment`` / ``group`` as a number).

Corrupt lines are *added* to the valid records; they never replace one.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

KINDS = ("truncated", "not_object", "missing_field", "wrong_type")
REQUIRED = {
    "events": ("user_id", "event_type", "ts"),
    "activations": ("user_id", "experiment", "group", "ts"),
}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _wrong_type(topic: str, rec: dict[str, Any], choice: int) -> dict[str, Any]:
    bad = dict(rec)
    string_field = "event_type" if topic == "events" else ("experiment", "group")[(choice // 4) % 2]
    variant = choice % 4
    if variant == 0:
        bad["user_id"] = str(rec["user_id"])
    elif variant == 1:
        bad["ts"] = rec["ts"] + 0.5
    elif variant == 2:
        bad["ts"] = str(rec["ts"])
    else:
        bad[string_field] = 7 + choice
    return bad


def corrupt_lines(
    topic: str, records: list[dict[str, Any]], rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """One corrupt line per source record (without newline) and the kind of each."""
    kinds = rng.integers(0, len(KINDS), len(records))
    choices = rng.integers(0, 1 << 30, len(records))
    lines: list[str] = []
    for rec, kind, choice in zip(records, kinds.tolist(), choices.tolist(), strict=True):
        name = KINDS[kind]
        if name == "truncated":
            text = _dumps(rec)
            line = text[: 1 + choice % (len(text) - 1)]
        elif name == "not_object":
            line = (
                _dumps([rec]),
                str(rec["user_id"]),
                _dumps(str(rec["ts"])),
                "null",
            )[choice % 4]
        elif name == "missing_field":
            required = REQUIRED[topic]
            drop = required[choice % len(required)]
            line = _dumps({k: v for k, v in rec.items() if k != drop})
        else:
            line = _dumps(_wrong_type(topic, rec, choice))
        lines.append(line)
    return lines, [KINDS[k] for k in kinds.tolist()]
