"""The lock that serialises the writers of one Druid day across processes and machines.

A Druid write sends a whole day as it read it (see :mod:`results.stores.druid`), so two
writers of one day must never overlap, wherever they run. :class:`LeaseLock` holds a lease
named after the day in the metadata store, the same leases as the framework's in-progress
list (:mod:`metadata._leases`): the database lets exactly one holder take it (its unique key,
or an atomic update of an expired row), a thread extends it while the write runs, and it is
released afterwards. A writer that dies leaves a lease that expires after ``ttl`` seconds, so
a crash never blocks a day for long. It is what :func:`results.stores.open_store` gives the
Druid store unless told otherwise.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager

from metadata.repository import MetadataStore
from udf.errors import ResultsError
from udf.framework.leases import Heartbeat, default_holder

LEASE_TTL_SECONDS = 60.0  # a dead writer's lease frees the day after this long
WAIT_SECONDS = 3600.0  # longest wait for a day other writers hold, queued one after another
POLL_FIRST, POLL_MAX = 0.05, 0.5  # seconds between attempts: grows x1.5 up to the max


class LeaseLock:
    """Locks by name, backed by leases in the metadata store at ``metadata_url``.

    ``lock(name)`` is a context manager that waits up to ``wait`` seconds for the lease,
    heartbeats it every ``ttl / 4`` seconds while held, and releases it on exit. Each entry
    is its own holder, so two threads of one process exclude each other too.
    """

    def __init__(
        self, metadata_url: str, *, ttl: float = LEASE_TTL_SECONDS, wait: float = WAIT_SECONDS
    ) -> None:
        self.url = metadata_url
        self.ttl = ttl
        self.wait = wait

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        holder = default_holder()
        with MetadataStore(self.url) as store:
            self._take(store, name, holder)
            try:
                with Heartbeat(
                    store, [name], holder, ttl_seconds=self.ttl, interval=self.ttl / 4
                ) as beat:
                    yield
                lost = bool(beat.lost)
            finally:
                store.release(name, holder)
        if lost:
            # Its heartbeats failed for longer than the ttl: another writer may have taken
            # the day meanwhile and sent it without this write. Failing lets the caller's
            # retry write it again.
            raise ResultsError(
                f"lost the lock {name} while writing (no heartbeat for {self.ttl:g} s): "
                "another writer may have overwritten this write; run it again"
            )

    def _take(self, store: MetadataStore, name: str, holder: str) -> None:
        deadline = time.monotonic() + self.wait
        delay = POLL_FIRST
        while not store.acquire_lease(name, holder, self.ttl):
            left = deadline - time.monotonic()
            if left <= 0:
                others = [lease.holder for lease in store.leases() if lease.key == name]
                raise ResultsError(
                    f"waited {self.wait:g} s for the lock {name}, held by "
                    f"{others[0] if others else 'another writer'}"
                )
            time.sleep(min(random.uniform(delay / 2, delay), left))
            delay = min(delay * 1.5, POLL_MAX)
