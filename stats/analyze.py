"""The function behind ``udf analyze`` (the contract §5): summary CSV in, one row per group out.

Reading is strict, because a silently misread summary gives confidently wrong lifts: the
text must be UTF-8 (an Excel byte-order mark is allowed), the header exactly
``group,n,sum,sum_sq``, every cell numeric, group names unique, ``control`` present, and
every row the statistics of some list of numbers (``n`` a count, ``sum_sq >= sum**2/n``
up to round-off). Each error names the line. The comparison is the Welch t-test of
:mod:`stats.ttest` with no correction.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from stats.codes import Code
from stats.sufficient import _CANCEL_TOL, SampleStats
from udf.errors import InputError

HEADER = ("group", "n", "sum", "sum_sq")
BASELINE = "control"
FIELDS = (
    "group",
    "lift_abs",
    "lift_rel",
    "ci_low",
    "ci_high",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
)


def decode_summary(data: bytes, source: str = "summary") -> str:
    """The text of a summary file or stdin: UTF-8, with or without a byte-order mark."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{source}: not UTF-8 text") from None


def _impossible(n: float, s: float, ss: float, ss_cell: str) -> str | None:
    """Why ``(n, sum, sum_sq)`` are the statistics of no list of numbers (None if they are)."""
    if n == 0:
        return None if s == 0 and ss == 0 else "n is 0 but sum and sum_sq are not 0"
    if n == 1 and not math.isclose(ss, s * s, rel_tol=_CANCEL_TOL):
        return f"n is 1 but sum_sq {ss_cell!r} is not sum^2 = {s * s:.6g}"
    if int(SampleStats(n, s, ss).codes()) == Code.INVALID_INPUT:
        floor = s * s / n
        return f"sum_sq {ss_cell!r} is below sum^2/n = {floor:.6g}: no values have these statistics"
    return None


def read_summary(text: str, source: str = "summary") -> dict[str, SampleStats]:
    """Parse the summary CSV into statistics per group, in file order."""
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise InputError(f"{source}: empty file, expected the header {','.join(HEADER)}")
    header = tuple(cell.strip() for cell in rows[0])
    if header != HEADER:
        raise InputError(
            f"{source}: line 1: header is {','.join(header)!r}, expected {','.join(HEADER)!r}"
        )
    groups: dict[str, SampleStats] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(HEADER):
            raise InputError(
                f"{source}: line {lineno}: expected {len(HEADER)} cells, found {len(row)}"
            )
        name = row[0].strip()
        if not name:
            raise InputError(f"{source}: line {lineno}: empty group name")
        if name in groups:
            raise InputError(f"{source}: line {lineno}: group {name!r} appears twice")
        values = []
        for column, cell in zip(HEADER[1:], row[1:], strict=True):
            try:
                value = float(cell)
            except ValueError:
                raise InputError(
                    f"{source}: line {lineno}: {column} {cell.strip()!r} is not a number"
                ) from None
            if not math.isfinite(value):
                raise InputError(
                    f"{source}: line {lineno}: {column} {cell.strip()!r} is not finite"
                )
            values.append(value)
        if values[0] < 0 or values[0] != int(values[0]):
            raise InputError(f"{source}: line {lineno}: n {row[1].strip()!r} is not a count")
        problem = _impossible(values[0], values[1], values[2], row[3].strip())
        if problem:
            raise InputError(f"{source}: line {lineno}: {problem}")
        groups[name] = SampleStats(*values)
    if BASELINE not in groups:
        raise InputError(f"{source}: no {BASELINE!r} group (the baseline) among {sorted(groups)}")
    return groups


def analyze(groups: dict[str, SampleStats], alpha: float = 0.05) -> list[dict[str, Any]]:
    """One result per treatment group against ``control``: the contract's fields.

    Non-finite values become ``None``; a degenerate comparison adds ``status`` (the
    :class:`~stats.codes.Code` label, e.g. ``"zero_control_mean"``) saying why. Statistics
    too large to compare (they overflow) are an :class:`InputError`, like impossible ones.
    """
    from stats.ttest import welch  # scipy only when actually comparing

    if not 0 < alpha < 1:
        raise InputError(f"--alpha must be between 0 and 1, got {alpha}")
    names = [g for g in groups if g != BASELINE]
    if not names:
        return []
    control = SampleStats.stack([groups[BASELINE]] * len(names))
    treatment = SampleStats.stack([groups[g] for g in names])
    result = welch(control, treatment, alpha=alpha)
    out = []
    for i, name in enumerate(names):
        row = result.row(i)
        if row["code"] is Code.INVALID_INPUT:
            raise InputError(f"group {name!r}: statistics too large to compare (overflow)")
        item: dict[str, Any] = {"group": name, **{f: row[f] for f in FIELDS[1:]}}
        if row["code"] is not Code.OK:
            item["status"] = row["code"].label
        out.append(item)
    return out
