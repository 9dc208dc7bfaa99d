"""Multiple-testing corrections over configurable families of comparisons.

An experiment owner chooses what counts as one family: all metrics of a group, all groups
of a metric, every (group, metric, segment) of the experiment... :func:`family_ids` turns
that choice into one integer per comparison (comparisons sharing every key *not* corrected
over form a family), and :func:`adjust` applies Bonferroni, Holm or Benjamini-Hochberg
within each family at once, vectorized: one sort for all families, no loop over them.
Adjusted p-values match statsmodels' ``multipletests`` (``bonferroni``, ``holm``,
``fdr_bh``); NaN p-values (degenerate comparisons) stay NaN and do not count in a family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

import numpy as np


class Method(StrEnum):
    """A correction: family-wise error (Bonferroni, Holm) or false discovery rate (BH)."""

    NONE = "none"
    BONFERRONI = "bonferroni"
    HOLM = "holm"
    BH = "bh"


def family_ids(keys: Mapping[str, Sequence | np.ndarray], over: Sequence[str]) -> np.ndarray:
    """One family id per comparison: comparisons agreeing on every key not in ``over``.

    ``keys`` maps dimension names (``experiment``, ``group``, ``metric``, ``segment``) to
    equal-length columns; ``over`` names the dimensions the correction spans, e.g.
    ``("metric", "group")`` corrects over all metrics and groups of each experiment and
    segment. Unknown names in ``over`` are an error, not silently ignored.
    """
    unknown = set(over) - set(keys)
    if unknown:
        raise ValueError(f"cannot correct over unknown dimension(s): {sorted(unknown)}")
    fixed = [k for k in keys if k not in over]
    size = len(next(iter(keys.values()))) if keys else 0
    if not fixed:
        return np.zeros(size, dtype=np.int64)
    codes = [np.unique(np.asarray(keys[k]), return_inverse=True)[1].ravel() for k in fixed]
    combined = np.ravel_multi_index(codes, [int(c.max()) + 1 if c.size else 1 for c in codes])
    return np.unique(combined, return_inverse=True)[1].ravel().astype(np.int64)


def _grouped_cummax(values: np.ndarray, family: np.ndarray) -> np.ndarray:
    """Running maximum restarting at each family; ``family`` must be non-decreasing.

    Exact (no offsets added to floats): values are replaced by their global ranks, the
    family is put in the high part of an int64 key, and the running max of the keys is
    mapped back to values.
    """
    size = values.size
    if size == 0:
        return values
    order = np.argsort(values, kind="stable")
    rank = np.empty(size, dtype=np.int64)
    rank[order] = np.arange(size)
    key = family.astype(np.int64) * size + rank
    return values[order[np.maximum.accumulate(key) - family.astype(np.int64) * size]]


def adjust(
    p_values: np.ndarray, method: Method | str, families: np.ndarray | None = None
) -> np.ndarray:
    """Adjusted p-values (reject where ``adjusted <= alpha``), families corrected separately."""
    method = Method(method)
    p = np.asarray(p_values, dtype=float).ravel()
    fam = np.zeros(p.size, dtype=np.int64) if families is None else np.asarray(families).ravel()
    if method is Method.NONE or p.size == 0:
        return p.copy()
    valid = np.isfinite(p)
    out = np.full(p.size, np.nan)
    pv, fv = p[valid], fam[valid]
    order = np.lexsort((pv, fv))  # by family, then p ascending
    ps, fs = pv[order], fv[order]
    starts = np.r_[0, np.flatnonzero(np.diff(fs)) + 1]
    sizes = np.diff(np.r_[starts, ps.size])
    m = np.repeat(sizes, sizes).astype(float)  # family size per sorted element
    i = np.arange(ps.size) - np.repeat(starts, sizes)  # 0-based rank within family
    if method is Method.BONFERRONI:
        adj = ps * m
    elif method is Method.HOLM:
        adj = _grouped_cummax(np.minimum(ps * (m - i), 1.0), np.cumsum(np.r_[0, np.diff(fs) != 0]))
    else:  # Benjamini-Hochberg: running min from the largest p down
        raw = np.minimum(ps * m / (i + 1), 1.0)
        fam_rank = np.cumsum(np.r_[0, np.diff(fs) != 0])
        rev = slice(None, None, -1)
        adj = -_grouped_cummax(-raw[rev], fam_rank[-1] - fam_rank[rev])[rev]
    result = np.empty(ps.size)
    result[order] = np.minimum(adj, 1.0)
    out[valid] = result
    return out.reshape(np.shape(p_values))
