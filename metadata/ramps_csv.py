"""Parse a ramps CSV (the contract §2) into :class:`~metadata.records.RampRow` values.

All-or-nothing: every bad line is found (up to a limit) and reported with its line number
in one :class:`~udf.errors.InputError`, and nothing is returned, so an import never stores
half a file. Pure: no database, so it is unit-tested on its own.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable

from metadata.records import RampRow
from udf.errors import InputError
from udf.names import NAME, NAME_RULE
from udf.times import RANGE_TEXT, TS_MAX, TS_MIN

HEADER = ("experiment", "group", "ramp_ts", "allocation")
MAX_REPORTED = 10
# Matched with fullmatch: "$" would accept a trailing newline, and "\d" any Unicode digit.
_NAME = NAME  # the platform-wide name rule (udf.names)
_INT = re.compile(r"[0-9]{1,15}")  # more digits could not be in range
_NUMBER = re.compile(r"[0-9.eE+\-]+")  # ASCII only; float() would take any Unicode digit


def parse_ramps(lines: Iterable[str], source: str = "<ramps>") -> list[RampRow]:
    """The rows of ``lines`` (a ramps CSV, header first); raises InputError naming bad lines."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise InputError(f"{source}: empty file, expected the header {','.join(HEADER)}")
    found = tuple(cell.strip().lstrip("\ufeff") for cell in header)
    if found != HEADER:
        raise InputError(
            f"{source} line {reader.line_num}: bad header {','.join(found)!r}, "
            f"expected {','.join(HEADER)!r}"
        )
    rows: list[RampRow] = []
    problems: list[str] = []
    seen: dict[tuple[str, str, int], tuple[int, float]] = {}
    for cells in reader:
        line = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        try:
            row = _row(cells)
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        key = (row.experiment, row.group, row.ramp_ts)
        if key in seen and seen[key][1] != row.allocation:
            problems.append(
                f"line {line}: {row.experiment}/{row.group} at {row.ramp_ts} has allocation "
                f"{row.allocation:g}, but line {seen[key][0]} says {seen[key][1]:g}"
            )
            continue
        if key not in seen:
            seen[key] = (line, row.allocation)
            rows.append(row)
    if problems:
        shown = "; ".join(problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        if len(problems) == 1:
            raise InputError(f"{source} {shown}; nothing imported")
        raise InputError(f"{source}: {len(problems)} bad rows, nothing imported: {shown}{more}")
    return rows


def _row(cells: list[str]) -> RampRow:
    if len(cells) != len(HEADER):
        raise ValueError(f"expected {len(HEADER)} fields ({','.join(HEADER)}), found {len(cells)}")
    experiment, group, ramp_ts, allocation = (c.strip() for c in cells)
    for label, name in (("experiment", experiment), ("group", group)):
        if not _NAME.fullmatch(name):
            raise ValueError(f"{label} {name!r} {NAME_RULE}")
    if not _INT.fullmatch(ramp_ts) or not TS_MIN <= int(ramp_ts) < TS_MAX:
        raise ValueError(
            f"ramp_ts {ramp_ts!r} is not epoch milliseconds in the accepted times: expected an "
            f"integer from {TS_MIN} to {TS_MAX - 1} ({RANGE_TEXT})"
        )
    try:
        if not _NUMBER.fullmatch(allocation):
            raise ValueError
        percent = float(allocation)
    except ValueError:
        raise ValueError(f"allocation {allocation!r} is not a number") from None
    if not math.isfinite(percent) or not 0 < percent <= 100:
        raise ValueError(f"allocation {allocation!r} must be a percentage in (0, 100]")
    return RampRow(experiment, group, int(ramp_ts), percent)
