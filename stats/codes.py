"""Result codes: why a comparison has no (or only a partial) answer.

A million comparisons are computed in one vectorized call, so a degenerate one (an empty
group, a constant metric, a zero baseline) must not raise: it gets a code, and the numeric
fields the code names are NaN. Codes are small integers so that a column of them is a plain
``int8`` array; :class:`Code` gives them names. This module imports nothing heavy: the DAG
parser and the engines import it.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Code(IntEnum):
    """Outcome of one comparison. Higher values are more severe; the worst one wins.

    ``OK``: every field is a number.
    ``ZERO_CONTROL_MEAN``: the absolute lift, its interval and the p-value are valid; the
    relative lift and its interval are NaN (division by a zero baseline).
    ``ZERO_VARIANCE``: both groups are constant, so the standard error is zero; the lifts
    are valid (the relative one only if the control mean is not zero), the intervals and
    the p-value are NaN.
    ``ZERO_DENOMINATOR``: a ratio metric's denominator sums to zero in a group; only ``n``
    is meaningful.
    ``TOO_FEW_UNITS``: a group has fewer than two units, so no variance can be estimated;
    the lifts may be valid, intervals and p-value are NaN.
    ``EMPTY_GROUP``: a group has no units at all; every statistic is NaN.
    ``INVALID_INPUT``: the sufficient statistics are impossible (negative ``n``, a sum of
    squares below ``sum**2 / n``, a cross-product implying a correlation beyond +-1,
    fractional counts of conversions, infinities or NaN), or a sequential test was asked
    about a look numbered below 1; every statistic is NaN.
    ``PAST_LAST_LOOK``: a sequential test planned for ``K`` looks was asked about look
    ``K + 1`` or later; its error guarantee is spent, so every statistic is NaN.
    """

    OK = 0
    ZERO_CONTROL_MEAN = 1
    ZERO_VARIANCE = 2
    ZERO_DENOMINATOR = 3
    TOO_FEW_UNITS = 4
    EMPTY_GROUP = 5
    INVALID_INPUT = 6
    PAST_LAST_LOOK = 7

    @property
    def label(self) -> str:
        """The lower-case name used in JSON output (``"zero_control_mean"``)."""
        return self.name.lower()


def worst(*codes: np.ndarray | int) -> np.ndarray:
    """The most severe code element-wise: combine the checks of several inputs."""
    out = np.asarray(codes[0], dtype=np.int8)
    for code in codes[1:]:
        out = np.maximum(out, np.asarray(code, dtype=np.int8))
    return out


def first_match(shape: tuple[int, ...], checks: list[tuple[np.ndarray, Code]]) -> np.ndarray:
    """An ``int8`` code array: for each element, the worst code whose condition holds."""
    out = np.zeros(shape, dtype=np.int8)
    for condition, code in checks:
        out = np.where(condition & (out < code), np.int8(code), out)
    return out
