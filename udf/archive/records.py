"""Validation of input records (the contract §1): one JSON object per line.

:func:`parse` returns the normalised record or the reason it is corrupt. Rules:
required fields must be present with the right type (ints are JSON integers, never
floats or strings; strings are non-empty); ``value`` and any other optional field
must be a scalar string or number, and ``null`` counts as absent (it is dropped).
Booleans, arrays and objects are the wrong type. Blank lines are not records.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from udf.times import RANGE_TEXT, TS_MAX, TS_MIN

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

REQUIRED: dict[str, tuple[tuple[str, str], ...]] = {
    "events": (("user_id", "int"), ("event_type", "str"), ("ts", "ts")),
    "activations": (("user_id", "int"), ("experiment", "str"), ("group", "str"), ("ts", "ts")),
}


class Corrupt(Exception):
    """Raised by the validators: ``kind`` is a short category for counting, the message the reason."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


_SCALARS = frozenset((str, int, float))


def parse(line: bytes, topic: str) -> dict[str, Any]:
    """Parse and validate one line of ``topic``; raise :class:`Corrupt` with the reason."""
    return parse_for_archive(line, topic)[0]


def parse_for_archive(line: bytes, topic: str) -> tuple[dict[str, Any], bytes]:
    """The validated record and the bytes to archive for it.

    A record that needs no cleaning is archived as it arrived (stripped of surrounding
    whitespace), so nothing about it is lost; one whose null fields were dropped is
    re-serialised. (The copy matters: orjson's result holds a 4 KiB buffer, and a batch of
    them would cost hundreds of MiB.)
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise Corrupt("invalid_json", f"invalid JSON: {exc}") from None
    if type(obj) is not dict:
        raise Corrupt("not_object", f"not a JSON object but {_json_type(obj)}")
    if _FAST_PATH[topic](obj):
        return obj, line.strip()
    clean = _validate(obj, REQUIRED[topic], line)
    return clean, bytes(memoryview(orjson.dumps(clean)))


# The fast paths accept the common valid record in a handful of type checks; anything
# unusual (extra fields, nulls, errors) falls through to _validate, which finds the reason.
def _plain_event(obj: dict[str, Any]) -> bool:
    uid, kind, ts = obj.get("user_id"), obj.get("event_type"), obj.get("ts")
    return (
        type(uid) is int
        and type(ts) is int
        and type(kind) is str
        and kind != ""
        and TS_MIN <= ts < TS_MAX
        and INT64_MIN <= uid <= INT64_MAX
        and (len(obj) == 3 or _plain_extras(obj))
    )


def _plain_activation(obj: dict[str, Any]) -> bool:
    uid, exp, group, ts = obj.get("user_id"), obj.get("experiment"), obj.get("group"), obj.get("ts")
    return (
        type(uid) is int
        and type(ts) is int
        and type(exp) is str
        and type(group) is str
        and exp != ""
        and group != ""
        and TS_MIN <= ts < TS_MAX
        and INT64_MIN <= uid <= INT64_MAX
        and (len(obj) == 4 or _plain_extras(obj))
    )


def _plain_extras(obj: dict[str, Any]) -> bool:
    return _SCALARS.issuperset(map(type, obj.values())) and type(obj.get("value", 0.0)) is not str


_FAST_PATH = {"events": _plain_event, "activations": _plain_activation}


def _validate(
    obj: dict[str, Any], required: tuple[tuple[str, str], ...], line: bytes
) -> dict[str, Any]:
    """The slow path: find the exact reason a record is corrupt, or drop its null optional fields."""
    for name, kind in required:
        if name not in obj or obj[name] is None:
            raise Corrupt("missing_field", f"missing required field '{name}'")
        _check(name, obj[name], kind, line)
    clean = dict(obj)
    for name, value in obj.items():
        if value is None:
            del clean[name]
        elif type(value) not in _SCALARS:
            raise Corrupt(
                "wrong_type",
                f"field '{name}' must be a string or a number, not {_json_type(value)}",
            )
    if type(clean.get("value")) is str:
        raise Corrupt("wrong_type", "field 'value' must be a number, not a string")
    return clean


def _check(name: str, value: Any, kind: str, line: bytes) -> None:
    if kind == "str":
        if type(value) is not str:
            raise Corrupt("wrong_type", f"field '{name}' must be a string, not {_json_type(value)}")
        if not value:
            raise Corrupt("empty_field", f"field '{name}' must not be empty")
        return
    if type(value) is float and _written_as_integer(line, name):
        # orjson reads an integer literal beyond 64 bits as a float: name the real problem
        raise Corrupt("out_of_range", f"field '{name}' does not fit in 64 bits")
    if type(value) is not int:
        raise Corrupt("wrong_type", f"field '{name}' must be an integer, not {_json_type(value)}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise Corrupt("out_of_range", f"field '{name}' does not fit in 64 bits")
    if kind == "ts" and not TS_MIN <= value < TS_MAX:
        raise Corrupt(
            "out_of_range",
            f"field '{name}' is outside the accepted times, {RANGE_TEXT}, in epoch ms",
        )


_INTEGER = object()


def _written_as_integer(line: bytes, name: str) -> bool:
    """Whether field ``name`` of ``line`` is written as an integer literal, whatever its size.
    Its float from orjson does not tell: ``-9223372036854775809`` rounds to -2**63, which fits,
    and ``1e19`` is a float literal however whole (the stream's checks decide by the text)."""
    return json.loads(line, parse_int=lambda _: _INTEGER).get(name) is _INTEGER


def _json_type(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
