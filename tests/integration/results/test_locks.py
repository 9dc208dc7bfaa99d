"""The lease lock the Druid store takes around each write of a day (results/stores/locks.py)."""

from __future__ import annotations

import re
import threading
import time

import pytest

from metadata.repository import MetadataStore
from results.stores.locks import LeaseLock
from udf.errors import ResultsError

NAME = "results/druid/udf_results/2026-01-02"


def holders(lock: LeaseLock) -> list[tuple[str, str]]:
    with MetadataStore(lock.url) as store:
        return [(lease.key, lease.holder) for lease in store.leases()]


def test_a_second_writer_waits_and_is_told_who_holds_the_day(day_lock: LeaseLock) -> None:
    impatient = LeaseLock(day_lock.url, wait=0.3)
    with day_lock(NAME):
        [(key, holder)] = holders(day_lock)
        assert key == NAME
        waited = re.escape(f"waited 0.3 s for the lock {NAME}, held by {holder}")
        with pytest.raises(ResultsError, match=waited), impatient(NAME):
            pytest.fail("entered a lock another writer holds")
        with impatient("results/druid/udf_results/2026-01-03"):  # another day: free
            pass
    assert holders(day_lock) == []  # released
    with impatient(NAME):
        pass


def test_threads_of_one_process_exclude_each_other(day_lock: LeaseLock) -> None:
    inside, overlaps = [], []

    def write() -> None:
        with day_lock(NAME):
            inside.append(1)
            overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=write) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1, 1, 1]


def test_a_dead_writers_lease_expires_and_frees_the_day(day_lock: LeaseLock) -> None:
    with MetadataStore(day_lock.url) as store:
        assert store.acquire_lease(NAME, "crashed-worker", 0.3)  # never released
    started = time.monotonic()
    with LeaseLock(day_lock.url, wait=10)(NAME):
        assert time.monotonic() - started >= 0.2
        assert [holder for _, holder in holders(day_lock)] != ["crashed-worker"]


def test_a_lease_lost_during_the_write_fails_it(day_lock: LeaseLock) -> None:
    lock = LeaseLock(day_lock.url, ttl=0.4)
    lost = f"lost the lock {NAME} while writing"
    with pytest.raises(ResultsError, match=lost), lock(NAME), MetadataStore(lock.url) as store:
        [(_, holder)] = holders(lock)
        store.release(NAME, holder)  # as if it had expired and been taken over
        assert store.acquire_lease(NAME, "another-writer", 60)
        time.sleep(0.3)  # a heartbeat finds the lease gone
    with MetadataStore(lock.url) as store:
        assert store.release(NAME, "another-writer")
