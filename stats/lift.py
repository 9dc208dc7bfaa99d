"""The shared last step of every two-group test: lifts, intervals and a p-value.

Each test (Welch, proportions, ratio, CUPED, the sequential ones) reduces its input to an
estimated difference, the two groups' baseline means and the variances of the two mean
estimates; from there the absolute lift, the relative lift (delta method), both intervals
and the two-sided p-value are computed the same way, vectorized, with the result codes
deciding which fields are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import special  # noqa: TID253 - a computation module, never imported by DAGs

from stats.codes import Code

# Codes that leave nothing to report, and codes that leave the lifts but no inference.
_NOTHING = (Code.EMPTY_GROUP, Code.INVALID_INPUT, Code.ZERO_DENOMINATOR, Code.PAST_LAST_LOOK)
_NO_INFERENCE = (*_NOTHING, Code.TOO_FEW_UNITS, Code.ZERO_VARIANCE)


@dataclass(frozen=True, eq=False)
class Comparison:
    """Treatment against control, one element per comparison (all arrays, equal length).

    ``ci_low``/``ci_high`` bound the absolute lift, ``rel_ci_low``/``rel_ci_high`` the
    relative lift; ``se`` and ``rel_se`` are their standard errors, ``df`` the degrees of
    freedom used (``inf`` for a z-test). ``code`` (int8, see :class:`stats.codes.Code`)
    says why a field is NaN; a NaN never appears without a non-OK code.
    """

    lift_abs: np.ndarray
    lift_rel: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rel_ci_low: np.ndarray
    rel_ci_high: np.ndarray
    p_value: np.ndarray
    se: np.ndarray
    rel_se: np.ndarray
    df: np.ndarray
    code: np.ndarray

    def row(self, i: int = 0) -> dict[str, Any]:
        """One comparison as plain Python values (NaN as None), for JSON and tables."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = np.asarray(getattr(self, f.name)).reshape(-1)[i]
            if f.name == "code":
                out[f.name] = Code(int(value))
            else:
                out[f.name] = None if not np.isfinite(value) else float(value)
        return out

    def __len__(self) -> int:
        return int(np.asarray(self.code).size)


def t_quantile(df: np.ndarray, prob: np.ndarray | float) -> np.ndarray:
    """Student-t quantile; ``df = inf`` gives the normal quantile."""
    return special.stdtrit(df, prob)


def two_sided_p(stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p-value of a t (or, with ``df = inf``, z) statistic."""
    return 2.0 * special.stdtr(df, -np.abs(stat))


def compare(
    diff: np.ndarray,
    base_c: np.ndarray,
    base_t: np.ndarray,
    var_mean_c: np.ndarray,
    var_mean_t: np.ndarray,
    df: np.ndarray,
    alpha: np.ndarray | float,
    code: np.ndarray,
    test_se: np.ndarray | None = None,
) -> Comparison:
    """Lifts, intervals and p-value from an estimated difference and its ingredients.

    ``diff`` is the treatment-minus-control estimate (possibly adjusted, as in CUPED),
    ``base_c``/``base_t`` the unadjusted group means the relative lift divides by, and
    ``var_mean_c``/``var_mean_t`` the variances of the two mean estimates. The relative
    lift ``diff / base_c`` has the delta-method variance
    ``var_t / base_c**2 + var_c * base_t**2 / base_c**4`` (as in gbstats). ``test_se``
    replaces the interval's standard error in the test statistic (the pooled one of the
    two-proportion z-test); ``ZERO_VARIANCE`` is then decided by it, not by the interval's.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        diff = np.asarray(diff, dtype=float)
        var = np.asarray(var_mean_c, dtype=float) + var_mean_t
        se = np.sqrt(var)
        rel = diff / base_c
        rel_var = var_mean_t / base_c**2 + var_mean_c * base_t**2 / base_c**4
        rel_se = np.sqrt(rel_var)
        crit = t_quantile(df, 1.0 - np.asarray(alpha) / 2.0)
        p = two_sided_p(diff / (se if test_se is None else test_se), df)

    code = np.asarray(code, dtype=np.int8).copy()
    test = se if test_se is None else np.asarray(test_se, dtype=float)
    code = np.where((code == Code.OK) & (test == 0), np.int8(Code.ZERO_VARIANCE), code)
    code = np.where((code == Code.OK) & (base_c == 0), np.int8(Code.ZERO_CONTROL_MEAN), code)
    nothing = np.isin(code, _NOTHING)
    no_inference = np.isin(code, _NO_INFERENCE)
    no_rel = nothing | (base_c == 0)

    # Anything still not finite where the code promises a number is impossible input.
    broken = (~nothing & ~np.isfinite(diff)) | (~no_inference & ~np.isfinite(se * crit * p))
    broken |= ~no_rel & ~np.isfinite(rel) | (~no_rel & ~no_inference & ~np.isfinite(rel_se))
    code = np.where(broken, np.int8(Code.INVALID_INPUT), code)
    nothing |= broken
    no_inference |= broken
    no_rel |= broken

    def keep(values: np.ndarray, drop: np.ndarray) -> np.ndarray:
        return np.where(drop, np.nan, values)

    with np.errstate(invalid="ignore", over="ignore"):
        half, rel_half = crit * se, crit * rel_se
        bounds = (diff - half, diff + half, rel - rel_half, rel + rel_half)
    return Comparison(
        lift_abs=keep(diff, nothing),
        lift_rel=keep(rel, no_rel),
        ci_low=keep(bounds[0], no_inference),
        ci_high=keep(bounds[1], no_inference),
        rel_ci_low=keep(bounds[2], no_inference | no_rel),
        rel_ci_high=keep(bounds[3], no_inference | no_rel),
        p_value=keep(p, no_inference),
        se=keep(se, no_inference),
        rel_se=keep(rel_se, no_inference | no_rel),
        df=keep(np.broadcast_to(np.asarray(df, dtype=float), diff.shape), no_inference),
        code=code.astype(np.int8),
    )


def blank_where(comparison: Comparison, where: np.ndarray, code: Code) -> Comparison:
    """The same comparison with every field NaN and ``code`` set where ``where`` holds."""
    where = np.broadcast_to(np.asarray(where, dtype=bool), comparison.code.shape)
    values = {
        f.name: np.where(where, np.nan, getattr(comparison, f.name))
        for f in fields(comparison)
        if f.name != "code"
    }
    return Comparison(
        **values, code=np.where(where, np.int8(code), comparison.code).astype(np.int8)
    )
