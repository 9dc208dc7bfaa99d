"""Compare stored result rows with expected ones (the oracle's, or another engine's).

Keys must match one to one; integers (the look included) and the status must be equal, sums
and, where the comparison is not degenerate, statistics equal to 1e-9 (absolute or relative).
"""

from __future__ import annotations

import math
from typing import Any

from oracle.duckdb_metrics import COMPARISON_FIELDS, CUPED_FIELDS, row_key

INT_FIELDS = ("period_end", "look", "exposed", "volume", "propensity", "n")
SUM_FIELDS = ("sum", "sum_sq", "den_sum", "den_sum_sq", "sum_xy", "pre_sum", "pre_sum_sq",
              "pre_sum_xy")  # fmt: skip
REL_TOL = ABS_TOL = 1e-9


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def differences(expected: list[dict], actual: list[Any]) -> list[str]:
    """Every difference between the oracle's rows and the stored ResultRows, one per line."""
    exp = {row_key(r): r for r in expected}
    act: dict[tuple, dict] = {}
    problems: list[str] = []
    for row in actual:
        d = row.to_dict()
        k = row.key()
        if k in act:
            problems.append(f"duplicate key {k}")
        act[k] = d
    for k in sorted(exp.keys() - act.keys()):
        problems.append(f"missing {k}: expected {_short(exp[k])}")
    for k in sorted(act.keys() - exp.keys()):
        problems.append(f"unexpected {k}: got {_short(act[k])}")
    for k in sorted(exp.keys() & act.keys()):
        e, a = exp[k], act[k]
        diffs = []
        for f in INT_FIELDS:
            if e[f] != a[f] or type(a[f]) is not int:
                diffs.append(f"{f} {a[f]!r} != {e[f]!r}")
        for f in SUM_FIELDS:
            if (e[f] is None) != (a[f] is None) or (e[f] is not None and not _close(a[f], e[f])):
                diffs.append(f"{f} {a[f]!r} != {e[f]!r}")
        if e["status"] != a["status"]:
            diffs.append(f"status {a['status']!r} != {e['status']!r}")
        elif e["status"] == "":
            for f in (*COMPARISON_FIELDS, *CUPED_FIELDS):
                ok = (e[f] is None and a[f] is None) or (
                    e[f] is not None and a[f] is not None and _close(a[f], e[f])
                )
                if not ok:
                    diffs.append(f"{f} {a[f]!r} != {e[f]!r}")
        if diffs:
            problems.append(f"{k}: " + "; ".join(diffs))
    return problems


def _short(row: dict) -> str:
    keys = ("exposed", "volume", "propensity", "n", "sum", "status")
    return "{" + ", ".join(f"{k}={row[k]!r}" for k in keys) + "}"


def report(problems: list[str], limit: int = 60) -> str:
    head = "\n".join(problems[:limit])
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} difference(s):\n{head}{more}"
