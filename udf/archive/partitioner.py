"""Kafka's default partitioner, so archived files line up with live topic partitions.

A producer that keys records by ``user_id`` serialised as an 8-byte big-endian long
(Kafka's ``LongSerializer``) sends each record to ``toPositive(murmur2(key)) % partitions``.
The archive uses the same function, so partition ``p`` of an archived hour holds exactly
the users that partition ``p`` of the live topic holds.
"""

from __future__ import annotations

import numpy as np

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` as a signed 32-bit int (reference implementation, one key)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = length % 4
    base = length - tail
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of(user_id: int, partitions: int) -> int:
    """The partition of one user id (8-byte big-endian key)."""
    key = int(user_id).to_bytes(8, "big", signed=True)
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partitions_of(user_ids: np.ndarray, partitions: int) -> np.ndarray:
    """Vectorised :func:`partition_of` over an int64 array."""
    keys = np.asarray(user_ids, dtype=">i8").view(np.uint8).reshape(-1, 8)
    words = keys.view("<u4").astype(np.uint64)  # two little-endian 32-bit words per key
    m = np.uint64(_M)
    mask = np.uint64(_MASK)
    h = np.full(len(keys), (_SEED ^ 8) & _MASK, dtype=np.uint64)
    for col in range(2):
        k = (words[:, col] * m) & mask
        k ^= k >> np.uint64(24)
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    h ^= h >> np.uint64(13)
    h = (h * m) & mask
    h ^= h >> np.uint64(15)
    return ((h & np.uint64(0x7FFFFFFF)) % np.uint64(partitions)).astype(np.int64)
