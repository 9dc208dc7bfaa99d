"""What a sequential test returns: the comparison, the level it was judged at, the call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stats.lift import Comparison


@dataclass(frozen=True, eq=False)
class SequentialResult:
    """A comparison whose intervals are valid under the method's peeking rule.

    ``comparison`` holds lifts and intervals (widened as the method requires) and the
    p-value the method defines (the naive one for boundary methods, an always-valid one
    for mixture methods); ``nominal_alpha`` is the level that p-value is compared with at
    this look; ``reject`` is the decision (False wherever the code is not OK).
    """

    comparison: Comparison
    nominal_alpha: np.ndarray
    reject: np.ndarray


def decide(comparison: Comparison, nominal_alpha: np.ndarray | float) -> SequentialResult:
    """Reject where the p-value is at most the nominal level (never on a NaN p-value)."""
    nominal = np.broadcast_to(np.asarray(nominal_alpha, dtype=float), comparison.code.shape)
    with np.errstate(invalid="ignore"):
        reject = np.nan_to_num(comparison.p_value, nan=np.inf) <= nominal
    return SequentialResult(comparison, nominal.copy(), reject)
