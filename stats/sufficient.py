"""Mergeable sufficient statistics: the currency between the engines and the statistics.

Spark partitions and Flink's rolling buckets each produce ``(n, sum, sum_sq, ...)``; adding
two of them gives the statistics of the union, so partial results combine in any order and
no raw rows are needed downstream. Every class here works in two forms with the same code:

* **scalar**: fields are Python numbers, one group of one metric (what an engine emits);
* **columnar**: fields are equal-length numpy arrays, one element per (experiment, group,
  metric, segment) cell, so the tests run vectorized over a million comparisons.

``__add__`` is field-wise in both forms. Importable without scipy (the DAG parser imports it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import Field, dataclass, fields
from typing import Any, Self

import numpy as np

from stats.codes import Code, first_match

Number = float | int | np.ndarray

# Relative round-off allowed in ``sum_sq - sum**2/n`` before a negative value is invalid.
_CANCEL_TOL = 1e-9
# ``sum_sq - sum**2/n`` within this many machine epsilons of ``sum_sq`` is round-off, not
# variance: a constant group's cancellation leaves a few ulps (4e-16 for three rows of
# 1.1), which would otherwise give a positive variance and absurd p-values. Real data with
# a coefficient of variation above about 1e-7 (e.g. mean 1e6, sd 10) stay well above it.
_ROUND_OFF = 64 * np.finfo(float).eps
# Relative excess of ``cov**2`` over ``var_x * var_y`` tolerated (beyond the round-off of
# each moment) before the cross-product is impossible (Cauchy-Schwarz).
_CS_TOL = 1e-9


def _fields(obj: Any) -> tuple[Field[Any], ...]:
    """``dataclasses.fields`` for the dataclass subclasses of :class:`_Mergeable`."""
    return fields(obj)


class _Mergeable:
    """Field-wise addition, stacking and selection shared by every statistics class."""

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        return type(self)(*(getattr(self, f.name) + getattr(other, f.name) for f in _fields(self)))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in _fields(self)
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def zero(cls) -> Self:
        """The neutral element: statistics of no units."""
        return cls(*(0.0 for _ in _fields(cls)))

    @classmethod
    def stack(cls, items: Sequence[Self]) -> Self:
        """Columnar form of many scalar statistics (one array element per item)."""
        return cls(
            *(np.array([getattr(i, f.name) for i in items], dtype=float) for f in _fields(cls))
        )

    def columns(self) -> Self:
        """The same statistics with every field as a float array (scalars become shape ())."""
        return type(self)(*(np.asarray(getattr(self, f.name), dtype=float) for f in _fields(self)))

    def total(self, axis: int = 0) -> Self:
        """Merge the cells of a columnar form along ``axis`` (e.g. buckets into a window)."""
        return type(self)(*(np.sum(getattr(self, f.name), axis=axis) for f in _fields(self)))

    def take(self, index: Any) -> Self:
        """Select cells of a columnar form (numpy indexing on every field)."""
        return type(self)(*(np.asarray(getattr(self, f.name))[index] for f in _fields(self)))


def _mean(total: Number, n: Number) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(n) > 0, np.asarray(total, dtype=float) / n, np.nan)


def _comoment(n: Number, sx: Number, sy: Number, sxy: Number) -> np.ndarray:
    """Unbiased covariance from sums; NaN for n < 2."""
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = np.asarray(sxy, dtype=float) - np.asarray(sx) * np.asarray(sy) / n
        return np.where(n > 1, centred / (n - 1), np.nan)


def _variance(n: Number, s: Number, ss: Number) -> np.ndarray:
    """Unbiased variance; NaN for n < 2.

    ``sum_sq - sum**2/n`` is exactly zero when within ``_ROUND_OFF`` of ``sum_sq`` (a
    constant group), and a negative value within ``_CANCEL_TOL`` (round-off of merged
    partial sums) is clipped to zero; below that the cell is ``INVALID_INPUT``.
    """
    var = _comoment(n, s, s, ss)
    scale = np.abs(np.asarray(ss, dtype=float)) / np.maximum(np.asarray(n, dtype=float) - 1, 1)
    with np.errstate(invalid="ignore"):
        zero = (np.abs(var) <= _ROUND_OFF * scale) | ((var < 0) & (var >= -_CANCEL_TOL * scale))
    return np.where(zero, 0.0, var)


def _covariance_impossible(
    n: Number, sx: Number, sxx: Number, sy: Number, syy: Number, sxy: Number
) -> np.ndarray:
    """Where ``cov**2 > var_x * var_y`` beyond round-off: no data have these sums.

    Each moment may be off by ``_ROUND_OFF`` of its raw sum of squares (or products), so
    the test is ``|cov| > sqrt((var_x + e_x) (var_y + e_y) (1 + _CS_TOL)) + e_xy``:
    perfectly correlated data and constant values with a round-off covariance pass.
    """
    n = np.asarray(n, dtype=float)
    var_x, var_y = _variance(n, sx, sxx), _variance(n, sy, syy)
    cov = _comoment(n, sx, sy, sxy)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = _ROUND_OFF / np.maximum(n - 1, 1)
        e_x = scale * np.abs(np.asarray(sxx, dtype=float))
        e_y = scale * np.abs(np.asarray(syy, dtype=float))
        e_xy = np.sqrt(e_x * e_y)
        bound = np.sqrt((var_x + e_x) * (var_y + e_y) * (1 + _CS_TOL)) + e_xy
        return np.asarray(np.abs(cov) > bound)


def _validity(n: Number, s: Number, ss: Number, *more: Number) -> np.ndarray:
    """Codes for impossible, empty and too-small groups (``int8`` array)."""
    n = np.asarray(n, dtype=float)
    s = np.asarray(s, dtype=float)
    ss = np.asarray(ss, dtype=float)
    finite = np.isfinite(n) & np.isfinite(s) & np.isfinite(ss)
    for extra in more:
        finite &= np.isfinite(np.asarray(extra, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(n > 0, s * s / n, 0.0)
    bad_ss = ss < floor - _CANCEL_TOL * np.abs(floor) - 1e-12
    invalid = ~finite | (n < 0) | bad_ss | ((n == 0) & ((s != 0) | (ss != 0)))
    return first_match(
        n.shape,
        [(n < 2, Code.TOO_FEW_UNITS), (n == 0, Code.EMPTY_GROUP), (invalid, Code.INVALID_INPUT)],
    )


@dataclass(frozen=True, eq=False)
class SampleStats(_Mergeable):
    """Per-unit values of one metric in one group: count, sum and sum of squares.

    For a conversion (0/1) metric ``sum == sum_sq`` is the number of converted units.
    """

    n: Number
    sum: Number
    sum_sq: Number

    @classmethod
    def from_values(cls, values: Iterable[float] | np.ndarray, axis: int = -1) -> SampleStats:
        """Statistics of raw per-unit values (along ``axis`` for a columnar result)."""
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 0 or (arr.ndim == 1 and axis in (0, -1)):
            return cls(float(arr.size), float(arr.sum()), float((arr * arr).sum()))
        return cls(
            np.full(np.delete(arr.shape, axis), arr.shape[axis], dtype=float),
            arr.sum(axis=axis),
            (arr * arr).sum(axis=axis),
        )

    @classmethod
    def from_counts(cls, n: Number, successes: Number) -> SampleStats:
        """Statistics of a 0/1 metric from its unit and success counts."""
        return cls(n, successes, successes)

    @property
    def mean(self) -> np.ndarray:
        return _mean(self.sum, self.n)

    @property
    def variance(self) -> np.ndarray:
        """Unbiased sample variance of the per-unit values."""
        return _variance(self.n, self.sum, self.sum_sq)

    def codes(self) -> np.ndarray:
        """Validity of each cell: ``OK``, ``TOO_FEW_UNITS``, ``EMPTY_GROUP``, ``INVALID_INPUT``."""
        return _validity(self.n, self.sum, self.sum_sq)


class _PairStats(_Mergeable):
    """Two per-unit quantities ``x`` and ``y`` and the sum of their products.

    Subclasses declare their fields in the order ``n, x_sum, x_sum_sq, y_sum, y_sum_sq,
    cross_sum``; covariance and validity are defined once here on that order.
    """

    def _moments(self) -> tuple[Number, ...]:
        return tuple(getattr(self, f.name) for f in _fields(self))

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased covariance of the two per-unit quantities."""
        n, x_sum, _, y_sum, _, cross_sum = self._moments()
        return _comoment(n, x_sum, y_sum, cross_sum)

    @property
    def covariance_impossible(self) -> np.ndarray:
        """Where ``covariance**2`` exceeds the product of the variances beyond round-off."""
        return _covariance_impossible(*self._moments())

    def codes(self) -> np.ndarray:
        """Validity of both parts, and ``INVALID_INPUT`` for an impossible covariance."""
        n, x_sum, x_sum_sq, y_sum, y_sum_sq, cross_sum = self._moments()
        code = np.maximum(_validity(n, x_sum, x_sum_sq, cross_sum), _validity(n, y_sum, y_sum_sq))
        return np.where(self.covariance_impossible, np.int8(Code.INVALID_INPUT), code)


@dataclass(frozen=True, eq=False)
class RatioStats(_PairStats):
    """A ratio metric (e.g. clicks per impression): per-unit numerator and denominator.

    The metric is ``num_sum / den_sum``; ``cross_sum`` (sum of numerator x denominator)
    gives their covariance, which the delta method needs.
    """

    n: Number
    num_sum: Number
    num_sum_sq: Number
    den_sum: Number
    den_sum_sq: Number
    cross_sum: Number

    @classmethod
    def from_values(cls, num: np.ndarray, den: np.ndarray, axis: int = -1) -> RatioStats:
        """Statistics of raw per-unit numerators and denominators."""
        num = np.asarray(num, dtype=float)
        den = np.asarray(den, dtype=float)
        n = np.sum(np.ones_like(num), axis=axis)
        return cls(
            n,
            num.sum(axis=axis),
            (num * num).sum(axis=axis),
            den.sum(axis=axis),
            (den * den).sum(axis=axis),
            (num * den).sum(axis=axis),
        )

    @property
    def numerator(self) -> SampleStats:
        return SampleStats(self.n, self.num_sum, self.num_sum_sq)

    @property
    def denominator(self) -> SampleStats:
        return SampleStats(self.n, self.den_sum, self.den_sum_sq)


@dataclass(frozen=True, eq=False)
class CovariateStats(_PairStats):
    """A metric with a pre-exposure covariate (for CUPED): the metric, the covariate and
    the sum of their products, per unit."""

    n: Number
    sum: Number
    sum_sq: Number
    pre_sum: Number
    pre_sum_sq: Number
    cross_sum: Number

    @classmethod
    def from_values(cls, post: np.ndarray, pre: np.ndarray, axis: int = -1) -> CovariateStats:
        """Statistics of raw per-unit metric values and their pre-period covariates."""
        ratio = RatioStats.from_values(post, pre, axis=axis)
        return cls(*ratio._moments())

    @property
    def post(self) -> SampleStats:
        return SampleStats(self.n, self.sum, self.sum_sq)

    @property
    def pre(self) -> SampleStats:
        return SampleStats(self.n, self.pre_sum, self.pre_sum_sq)
