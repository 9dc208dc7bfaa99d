"""Leases: one holder at a time until expiry, even for concurrent callers on real servers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

KEY = "clicks:2026-01-01:"


def test_a_lease_cannot_be_taken_twice_until_it_expires(store, clock) -> None:
    assert store.acquire_lease(KEY, "dag-a", ttl=60)
    assert not store.acquire_lease(KEY, "dag-b", ttl=60)
    assert store.acquire_lease(KEY, "dag-a", ttl=60)  # re-entrant for its holder

    clock.advance(seconds=30)
    assert store.heartbeat(KEY, "dag-a", ttl=60)  # now lives until +90s
    assert not store.heartbeat(KEY, "dag-b", ttl=60)
    clock.advance(seconds=59)
    assert not store.acquire_lease(KEY, "dag-b", ttl=60)

    clock.advance(seconds=2)  # expired
    assert not store.heartbeat(KEY, "dag-a", ttl=60)
    assert [x.key for x in store.leases()] == []
    assert store.acquire_lease(KEY, "dag-b", ttl=60)
    assert [(x.key, x.holder) for x in store.leases()] == [(KEY, "dag-b")]

    assert not store.release(KEY, "dag-a")
    assert store.release(KEY, "dag-b")
    assert store.acquire_lease(KEY, "dag-c", ttl=60)


def test_expire_leases_removes_only_expired_ones(store, clock) -> None:
    store.acquire_lease("short", "a", ttl=10)
    store.acquire_lease("long", "b", ttl=100)
    clock.advance(seconds=10)
    assert [x.key for x in store.expire_leases()] == ["short"]
    assert [x.key for x in store.leases(include_expired=True)] == ["long"]


def _race(store_factory, key: str, contenders: int = 6) -> list[bool]:
    stores = [store_factory() for _ in range(contenders)]  # separate engines and connections
    barrier = threading.Barrier(contenders)

    def contend(i: int) -> bool:
        barrier.wait()
        return stores[i].acquire_lease(key, f"holder-{i}", ttl=60)

    with ThreadPoolExecutor(contenders) as pool:
        return list(pool.map(contend, range(contenders)))


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_acquirers_exactly_one_wins(store_factory, round_) -> None:
    results = _race(store_factory, f"race-{round_}")
    assert results.count(True) == 1, results


def test_concurrent_takeover_of_an_expired_lease_exactly_one_wins(store_factory, clock) -> None:
    first = store_factory()
    assert first.acquire_lease("stale", "crashed-worker", ttl=5)
    clock.advance(seconds=6)
    results = _race(store_factory, "stale")
    assert results.count(True) == 1, results
    (lease,) = first.leases()
    assert lease.holder == f"holder-{results.index(True)}"


def test_timestamps_round_trip_as_aware_utc_with_microseconds(store, clock) -> None:
    # MySQL/MariaDB keep naive DATETIME(6) and SQLite text: both must come back aware UTC,
    # to the microsecond, or expiry comparisons drift.
    clock.advance(microseconds=123_456)
    store.acquire_lease("precise", "a", ttl=1.5)
    (lease,) = store.leases()
    assert lease.acquired_at == clock.now
    assert lease.acquired_at.utcoffset().total_seconds() == 0
    assert (lease.expires_at - lease.acquired_at).total_seconds() == 1.5


def test_acquiring_reads_the_clock_once(store, store_url) -> None:
    # The expiry used to come from a second clock reading, so a lease lived ttl + the time
    # between the two readings. A clock that moves on every reading makes that visible.
    from metadata.repository import MetadataStore

    readings = []

    def ticking() -> datetime:
        readings.append(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=len(readings)))
        return readings[-1]

    with MetadataStore(store_url, clock=ticking) as ticking_store:
        assert ticking_store.acquire_lease("once", "a", ttl=60)
        assert len(readings) == 1
        (lease,) = ticking_store.leases(include_expired=True)
    assert (lease.acquired_at, lease.expires_at - lease.acquired_at) == (
        readings[0],
        timedelta(seconds=60),
    )
