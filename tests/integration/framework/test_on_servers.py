"""The planning and lease tests again, on PostgreSQL and MariaDB.

Leases and run states rely on the database (unique keys, conditional updates, row locks),
so the unit tests of :mod:`udf.framework.plan` and :mod:`udf.framework.tasks` run here
unchanged against real servers: importing them collects them in this module, where
``store`` is the server-backed fixture of this folder's conftest.
"""

from __future__ import annotations

import pytest

from tests.integration.metadata.conftest import BACKENDS
from tests.unit.framework.test_plan import *  # noqa: F403
from tests.unit.framework.test_tasks import *  # noqa: F403

SERVERS = [p for p in BACKENDS if p.id != "sqlite"]  # SQLite: tests/unit/framework


@pytest.fixture(scope="session", params=SERVERS)
def framework_backend(request: pytest.FixtureRequest) -> str:
    return request.param


def test_racing_workers_compute_each_metric_day_once(home, store, clock) -> None:
    """Eight workers given the same batch at once (overlapping DAG runs): one computes each."""
    import threading
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from metadata.repository import MetadataStore
    from tests.unit.framework.support import DS, add_experiment, add_metrics, seal_through
    from udf.framework.plan import plan_run
    from udf.framework.spec import PipelineSpec
    from udf.framework.tasks import compute_batch

    names = [f"m{i}" for i in range(6)]
    add_metrics(store, *names)
    add_experiment(store)
    seal_through(home, DS)
    spec = PipelineSpec.model_validate(
        {"metric_type": "aggregated", "dag_creation_args": {"backfill_days": 0}}
    )
    batch = {"metric_type": "aggregated", "ds": DS.isoformat(), "metrics": names, "scope": ""}
    computed: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(8)

    def fake(home, metric_type, dates, *, metrics=None, **kw):
        with lock:
            computed.update(metrics or [])

    def worker(i: int) -> dict:
        with MetadataStore(store.url, clock=clock) as own:
            plan_run(home, spec, DS, store=own, now=clock.now, dag_run_id=f"run{i}")
            start.wait()
            return compute_batch(home, batch, holder=f"w{i}", store=own, compute=fake)

    with ThreadPoolExecutor(8) as pool:
        summaries = list(pool.map(worker, range(8)))
    assert computed == Counter(names)  # every metric-day once, none twice
    assert sorted(m for s in summaries for m in s["computed"]) == names
    assert {r.state for r in store.runs()} == {"done"}
    assert store.leases(include_expired=True) == []
