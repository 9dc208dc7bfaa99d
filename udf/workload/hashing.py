"""Stable, vectorized hashes: user ids, experiment buckets and per-user segment values.

Everything here is a pure function of its inputs (no random state), so a user's id,
country, platform and bucket in an experiment are the same in every run and every slice.
"""

from __future__ import annotations

import hashlib

import numpy as np

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_MIX1 = _U64(0xBF58476D1CE4E5B9)
_MIX2 = _U64(0x94D049BB133111EB)
_ID_MULT = _U64(0x5851F42D4C957F2D)  # odd, so the map index -> id is a bijection mod 2**40
_ID_MASK = _U64((1 << 40) - 1)
_COUNTRY_SALT = _U64(0xC0C0A1)
_PLATFORM_SALT = _U64(0x9A7F0)

COUNTRIES = ("US", "IN", "BR", "GB", "DE", "FR", "JP", "CA", "MX", "AU")
_COUNTRY_WEIGHTS = np.array([30, 18, 12, 8, 7, 6, 6, 5, 4, 4], dtype=np.float64)
PLATFORMS = ("android", "ios", "web")
_PLATFORM_WEIGHTS = np.array([45, 35, 20], dtype=np.float64)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer over a ``uint64`` array (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> _U64(30))) * _MIX1
    z = (z ^ (z >> _U64(27))) * _MIX2
    return z ^ (z >> _U64(31))


def user_ids(index: np.ndarray) -> np.ndarray:
    """The public ``user_id`` (int64 in ``[1, 2**40]``) of user index ``index`` (unique per index)."""
    z = (np.asarray(index).astype(np.uint64) * _ID_MULT) & _ID_MASK
    return (z + _U64(1)).astype(np.int64)


def experiment_salt(name: str) -> int:
    """A 64-bit salt from the experiment name (first 8 bytes of its BLAKE2b digest)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def buckets(uids: np.ndarray, salts: np.ndarray) -> np.ndarray:
    """Bucket in ``[0, 100)`` of each (user id, experiment salt): ``splitmix64(uid ^ salt) % 100``.

    ``uids`` of shape ``(m,)`` and ``salts`` of shape ``(e,)`` give an ``(m, e)`` int16 array.
    """
    u = np.asarray(uids).astype(np.uint64)[:, None]
    s = np.asarray(salts, dtype=np.uint64)[None, :]
    return (splitmix64(u ^ s) % _U64(100)).astype(np.int16)


def _pick(index: np.ndarray, salt: np.uint64, weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights) / weights.sum()
    u = (splitmix64(np.asarray(index).astype(np.uint64) ^ salt) >> _U64(11)).astype(np.float64)
    return np.searchsorted(cdf, u / float(1 << 53), side="right").astype(np.int16)


def countries(index: np.ndarray) -> np.ndarray:
    """Each user's fixed country code (index into :data:`COUNTRIES`)."""
    return _pick(index, _COUNTRY_SALT, _COUNTRY_WEIGHTS)


def platforms(index: np.ndarray) -> np.ndarray:
    """Each user's fixed platform code (index into :data:`PLATFORMS`)."""
    return _pick(index, _PLATFORM_SALT, _PLATFORM_WEIGHTS)
