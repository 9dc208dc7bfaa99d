"""What a sequential test returns: the comparison, the level it was judged at, the call."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stats.lift import _NO_INFERENCE, Comparison


@dataclass(frozen=True, eq=False)
class SequentialResult:
    """A comparison whose intervals are valid under the method's peeking rule.

    ``comparison`` holds lifts and intervals (widened as the method requires) and the
    p-value the method defines (the naive one for boundary methods, an always-valid one
    for mixture methods); ``nominal_alpha`` is the level that p-value is compared with at
    this look; ``reject`` is the decision (False wherever the code leaves no inference:
    every code but ``OK`` and ``ZERO_CONTROL_MEAN``).

    A running (always-valid) p-value is the stream's state, so at a look with no inference
    of its own it is the previous look's value carried forward, never NaN: the code says
    why this look added nothing, and ``reject`` is False there.
    """

    comparison: Comparison
    nominal_alpha: np.ndarray
    reject: np.ndarray


def running_p(p: np.ndarray, previous_p: np.ndarray | float, degenerate: np.ndarray) -> np.ndarray:
    """``min(previous_p, p)``, ignoring a NaN on either side; ``previous_p`` where degenerate.

    ``np.minimum`` would let one NaN (a look with a single unit, say) turn every later
    running p-value of the stream into NaN.
    """
    previous = np.broadcast_to(np.asarray(previous_p, dtype=float), np.shape(p))
    return np.where(degenerate, previous, np.fmin(p, previous))


def decide(comparison: Comparison, nominal_alpha: np.ndarray | float) -> SequentialResult:
    """Reject where the p-value is at most the nominal level (never on a NaN p-value, and
    never where the code leaves no inference)."""
    nominal = np.broadcast_to(np.asarray(nominal_alpha, dtype=float), comparison.code.shape)
    with np.errstate(invalid="ignore"):
        reject = np.nan_to_num(comparison.p_value, nan=np.inf) <= nominal
    reject &= ~np.isin(comparison.code, _NO_INFERENCE)
    return SequentialResult(comparison, nominal.copy(), reject)
