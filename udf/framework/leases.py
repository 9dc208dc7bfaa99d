"""The in-progress list: one lease per metric-day being computed, kept alive by heartbeats.

A lease ``metric:<name>:<ds>:<scope>`` in the metadata store says a worker is computing that
metric-day right now. Planning skips metric-days whose lease is live, so two DAG runs (the
daily one and a backfill, or two overlapping schedules) never compute the same thing at
once; a worker that dies stops heartbeating, its lease expires, and the next plan turns the
orphaned ``in_progress`` run into ``backfill_queued`` so it is computed again. Results are
replaced per slice, so even a zombie finishing late cannot double count.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from datetime import date
from types import TracebackType

from metadata.records import RunInfo
from metadata.repository import MetadataStore

log = logging.getLogger(__name__)

LOST_REASON = "lease expired (worker lost)"


def lease_key(metric: str, ds: date | str, scope: str = "") -> str:
    """The lease of one metric-day (and scope): ``metric:<name>:<YYYY-MM-DD>:<scope>``."""
    day = ds.isoformat() if isinstance(ds, date) else ds
    return f"metric:{metric}:{day}:{scope}"


def default_holder() -> str:
    """A holder name unique to this process and call: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def task_holder(dag_run_id: str, task_id: str, map_index: int = -1, try_number: int = 1) -> str:
    """The holder name of an Airflow task try: readable in ``udf status`` and in the leases.

    Each try is its own holder, so a retry never mistakes the lease of a try that may still
    be running (a zombie) for its own; it takes the lease over once it has expired.
    """
    mapped = f"[{map_index}]" if map_index >= 0 else ""
    return f"{dag_run_id}/{task_id}{mapped}#{try_number}@{socket.gethostname()}:{os.getpid()}"


def recover_lost_work(
    store: MetadataStore, metric_type: str | None = None, dag_run_id: str | None = None
) -> list[RunInfo]:
    """Requeue ``in_progress`` runs whose lease is gone: their worker crashed or was killed.

    Expired leases are deleted first (any kind: they are abandoned work). A run is judged
    by its own lease, not by the expired list, because another plan may already have
    deleted the expired row; a run still in progress always holds a live lease, since a
    worker takes the lease before entering ``in_progress`` and leaves that state before
    releasing it.
    """
    for lease in store.expire_leases():
        log.warning(
            "lease %s of %s expired (last heartbeat %s)",
            lease.key,
            lease.holder,
            lease.heartbeat_at,
        )
    live = {lease.key for lease in store.leases()}
    requeued = []
    for run in store.runs(states=["in_progress"]):
        if metric_type is not None and run.metric_type != metric_type:
            continue
        if lease_key(run.metric, run.ds, run.scope) in live:
            continue
        requeued.append(
            store.set_run_state(
                run.metric,
                run.ds,
                "backfill_queued",
                LOST_REASON,
                run.scope,
                dag_run_id=dag_run_id,
            )
        )
    return requeued


class Heartbeat:
    """Extends a set of leases every ``interval`` seconds from a background thread.

    A worker computing a long batch must keep its leases alive without touching the
    computation; a thread does that. Leases it fails to extend (expired and taken over)
    are collected in :attr:`lost`, so the caller can log that its result may race another
    worker's (harmless: slices are replaced, never added to).
    """

    def __init__(
        self,
        store: MetadataStore,
        keys: Sequence[str],
        holder: str,
        *,
        ttl_seconds: float,
        interval: float,
    ) -> None:
        self._store = store
        self._keys = list(keys)
        self._holder = holder
        self._ttl = ttl_seconds
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="udf-lease-heartbeat", daemon=True)
        self.lost: set[str] = set()
        self.beats = 0

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat()

    def beat(self) -> None:
        for key in self._keys:
            if key in self.lost:
                continue
            try:
                alive = self._store.heartbeat(key, self._holder, self._ttl)
            except Exception:  # a blip in the store must not kill the computation
                log.exception("heartbeat of %s failed; retrying at the next beat", key)
                continue
            if not alive:
                log.warning("lost lease %s: another worker may recompute it", key)
                self.lost.add(key)
        self.beats += 1
