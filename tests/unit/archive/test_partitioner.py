import numpy as np
import pytest

from udf.archive.partitioner import murmur2, partition_of, partitions_of

# Kafka's own test vectors for Utils.murmur2 (clients/src/test/.../UtilsTest.java).
KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
]


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS)
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_vectorised_partitioner_equals_reference() -> None:
    rng = np.random.default_rng(7)
    ids = np.concatenate(
        [
            rng.integers(-(2**63), 2**63 - 1, size=2000, dtype=np.int64),
            np.array([0, 1, -1, 2**63 - 1, -(2**63)], dtype=np.int64),
        ]
    )
    for partitions in (1, 3, 8, 16):
        expected = [partition_of(int(i), partitions) for i in ids]
        assert partitions_of(ids, partitions).tolist() == expected


def test_partitions_spread_users() -> None:
    counts = np.bincount(partitions_of(np.arange(80_000, dtype=np.int64), 8), minlength=8)
    assert counts.min() > 9_000  # no partition starves: within ~10% of 10,000
