"""Compute tasks: leases exclude, a crash's lease expires and the work is retried, errors are recorded.

``compute`` is a fake that records its calls (the real one is Spark's), so these tests check
the framework's bookkeeping, not the numbers. Runs on SQLite here and on PostgreSQL and
MariaDB from tests/integration/framework.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest

from metadata.repository import MetadataStore
from tests.unit.framework.support import DS, T0, add_experiment, add_metrics, seal_through
from udf.errors import InputError
from udf.framework.leases import LOST_REASON, lease_key
from udf.framework.plan import plan_run
from udf.framework.spec import PipelineSpec
from udf.framework.tasks import compute_batch, compute_now, run_in_process


def spec(**args: object) -> PipelineSpec:
    return PipelineSpec.model_validate({"metric_type": "aggregated", "dag_creation_args": args})


class FakeCompute:
    """Records each call; can fail, or run a hook while 'computing'."""

    def __init__(self, fail: Exception | None = None, during=None) -> None:
        self.calls: list[dict] = []
        self.fail = fail
        self.during = during

    def __call__(self, home, metric_type, dates, *, metrics=None, experiments=None, settings=None):
        self.calls.append(
            {
                "type": metric_type,
                "dates": list(dates),
                "metrics": list(metrics or []),
                "experiments": experiments,
            }
        )
        if self.during is not None:
            self.during()
        if self.fail is not None:
            raise self.fail
        return SimpleNamespace(rows=10 * len(metrics or []))


@pytest.fixture
def ready(home, store):
    add_metrics(store, "click", "search")
    add_experiment(store)
    seal_through(home, DS)
    return store


def batch(metrics=("click", "search"), scope="", ds=DS):
    return {
        "metric_type": "aggregated",
        "ds": ds.isoformat(),
        "metrics": list(metrics),
        "scope": scope,
        "dag_run_id": "scheduled__1",
    }


def test_a_batch_is_one_compute_call_and_every_metric_ends_done(home, ready, clock) -> None:
    [planned] = plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    fake = FakeCompute(during=lambda: clock.advance(seconds=90))
    summary = compute_batch(home, planned, holder="w1", spec=spec(), store=ready, compute=fake)
    assert fake.calls == [
        {"type": "aggregated", "dates": [DS], "metrics": ["click", "search"], "experiments": None}
    ]
    assert summary["computed"] == ["click", "search"] and summary["rows"] == 20
    for metric in ("click", "search"):
        run = ready.run(metric, DS)
        assert (run.state, run.reason, run.attempt) == (
            "done",
            "computed in a batch of 2 metric(s)",
            1,
        )
        assert run.duration_seconds == pytest.approx(90)
        assert [e.to_state for e in run.events] == ["queued", "in_progress", "done"]
    assert ready.leases(include_expired=True) == []  # released


def test_an_on_demand_batch_computes_only_its_experiment(home, ready) -> None:
    fake = FakeCompute()
    compute_batch(home, batch(scope="exp"), holder="w1", store=ready, compute=fake)
    assert fake.calls[0]["experiments"] == ["exp"]
    assert ready.run("click", DS, scope="exp").state == "done"
    assert ready.run("click", DS) is None  # the daily run is a different metric-day


def test_a_metric_leased_by_another_worker_is_left_to_it(home, ready) -> None:
    assert ready.acquire_lease(lease_key("click", DS), "w0", 300)
    ready.set_run_state("search", DS, "queued")
    fake = FakeCompute()
    summary = compute_batch(home, batch(), holder="w1", store=ready, compute=fake)
    assert summary["held_elsewhere"] == ["click"] and summary["computed"] == ["search"]
    assert fake.calls[0]["metrics"] == ["search"]
    assert ready.run("click", DS) is None  # untouched: w0 owns it
    assert [lease.holder for lease in ready.leases()] == ["w0"]


def test_nothing_to_do_makes_no_compute_call(home, ready) -> None:
    for metric in ("click", "search"):
        ready.set_run_state(metric, DS, "done")  # another run got there first
    fake = FakeCompute()
    summary = compute_batch(home, batch(), holder="w1", store=ready, compute=fake)
    assert fake.calls == [] and summary["already_done"] == ["click", "search"]
    assert ready.leases(include_expired=True) == []


def test_a_failure_is_recorded_with_its_reason_and_re_raised(home, ready, clock) -> None:
    plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    fake = FakeCompute(fail=RuntimeError("executor lost: OOM"))
    with pytest.raises(RuntimeError, match="OOM"):  # Airflow's retries see the error
        compute_batch(home, batch(), holder="w1", store=ready, compute=fake)
    for metric in ("click", "search"):
        run = ready.run(metric, DS)
        assert (run.state, run.reason) == ("failed", "RuntimeError: executor lost: OOM")
    assert ready.leases(include_expired=True) == []
    # The next run (or the task's retry) takes them again.
    clock.advance(hours=1)
    [again] = plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    assert again["metrics"] == ["click", "search"]
    assert (
        ready.run("click", DS).reason
        == "inputs ready (was failed: RuntimeError: executor lost: OOM)"
    )
    compute_batch(home, again, holder="w2", store=ready, compute=FakeCompute())
    assert ready.run("click", DS).state == "done" and ready.run("click", DS).attempt == 2


def test_a_crashed_workers_lease_expires_and_the_metric_is_retried(home, ready, clock) -> None:
    # What a killed worker leaves behind: its lease and the run in progress.
    assert ready.acquire_lease(lease_key("click", DS), "dead-worker", 300)
    ready.set_run_state("click", DS, "in_progress")
    # While the lease lives, nobody else computes it ...
    fake = FakeCompute()
    summary = compute_batch(home, batch(["click"]), holder="w1", store=ready, compute=fake)
    assert summary["held_elsewhere"] == ["click"] and fake.calls == []
    # ... once it expires the next plan requeues it, and it is computed once.
    clock.advance(seconds=301)
    [planned] = plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    assert ready.run("click", DS).events[-1].reason == LOST_REASON
    compute_batch(home, planned, holder="w1", store=ready, compute=fake)
    run = ready.run("click", DS)
    assert (run.state, run.attempt) == ("done", 2)
    assert [e.to_state for e in run.events] == [
        "in_progress",
        "backfill_queued",
        "in_progress",
        "done",
    ]


def test_a_retry_takes_an_expired_lease_over_directly(home, ready, clock) -> None:
    assert ready.acquire_lease(lease_key("click", DS), "try-1", 300)
    ready.set_run_state("click", DS, "in_progress")
    clock.advance(seconds=301)
    compute_batch(home, batch(["click"]), holder="try-2", store=ready, compute=FakeCompute())
    run = ready.run("click", DS)
    assert run.state == "done"
    assert run.events[-2].reason == "taking over from a lost worker"


def _crash_while_computing(url: str, root: str) -> None:
    """A worker process killed mid-compute: no except, no finally, no release."""
    from udf.home import Home

    def die() -> None:
        os._exit(9)

    with MetadataStore(url) as store:
        compute_batch(
            Home.resolve(root),
            batch(["click"]),
            holder="doomed",
            store=store,
            spec=spec(lease_ttl_seconds=2, heartbeat_seconds=1),
            compute=FakeCompute(during=die),
        )


def test_a_killed_worker_process_is_recovered_after_its_lease_expires(home, ready) -> None:
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_crash_while_computing, args=(ready.url, str(home.root)))
    child.start()
    child.join(60)
    assert child.exitcode == 9
    assert ready.run("click", DS).state == "in_progress"
    [lease] = ready.leases(include_expired=True)
    assert lease.holder == "doomed"
    later = lease.expires_at + timedelta(seconds=1)
    with MetadataStore(ready.url, clock=lambda: later) as store:
        [planned] = plan_run(home, spec(backfill_days=0), DS, store=store, now=later)
        assert "click" in planned["metrics"]
        compute_batch(home, planned, holder="w2", store=store, compute=FakeCompute())
        assert store.run("click", DS).state == "done"


def test_heartbeats_keep_a_long_batch_leased(home, home_store_real_clock) -> None:
    store = home_store_real_clock
    seen: list[bool] = []

    def meanwhile() -> None:
        for _ in range(4):
            time.sleep(0.25)  # 1 s in all, the ttl is 0.5 s: only heartbeats keep it
            seen.append(store.acquire_lease(lease_key("click", DS), "intruder", 30))

    summary = compute_batch(
        home,
        batch(["click"]),
        holder="w1",
        store=store,
        spec=spec(lease_ttl_seconds=0.5, heartbeat_seconds=0.1),
        compute=FakeCompute(during=meanwhile),
    )
    assert seen == [False] * 4 and summary["lost_leases"] == []


@pytest.fixture
def home_store_real_clock(home):
    with MetadataStore.for_home(home) as store:
        add_metrics(store, "click")
        yield store


def test_run_in_process_plans_and_computes_every_day(home, ready, clock) -> None:
    first = DS - timedelta(days=2)
    fake = FakeCompute()
    seen = []
    summaries = run_in_process(
        home,
        spec(backfill_days=0),
        first,
        DS,
        store=ready,
        compute=fake,
        now=clock.now,
        progress=lambda *a: seen.append(a[:3]),
    )
    assert [c["dates"] for c in fake.calls] == [[first], [first + timedelta(days=1)], [DS]]
    assert {r.state for r in ready.runs()} == {"done"}
    assert [s["ds"] for s in summaries] == [str(first), str(first + timedelta(days=1)), str(DS)]
    assert seen == [(first, 1, 1), (first + timedelta(days=1), 1, 1), (DS, 1, 1)]
    # Again: everything is done, so nothing is computed unless forced.
    assert (
        run_in_process(
            home, spec(backfill_days=0), first, DS, store=ready, compute=fake, now=clock.now
        )
        == []
    )
    run_in_process(
        home,
        spec(backfill_days=0),
        DS,
        DS,
        store=ready,
        compute=fake,
        now=clock.now,
        force=True,
        metrics=["search"],
    )
    assert fake.calls[-1]["metrics"] == ["search"] and len(fake.calls) == 4


def test_run_in_process_records_a_failing_batch_and_goes_on(home, ready, clock) -> None:
    calls = {"n": 0}

    def flaky(home, metric_type, dates, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("bad SQL")
        return SimpleNamespace(rows=1)

    first = DS - timedelta(days=1)
    summaries = run_in_process(
        home, spec(backfill_days=0), first, DS, store=ready, compute=flaky, now=clock.now
    )
    assert summaries[0]["error"] == "ValueError: bad SQL"
    failed = ready.run("click", first)
    assert [(e.to_state, e.reason) for e in failed.events][2] == ("failed", "ValueError: bad SQL")
    # With no look-back, the next day's plan gives the failed day up (a window of 0 days).
    assert failed.state == "skipped"
    assert ready.run("click", DS).state == "done"


def test_default_holder_is_unique_per_call() -> None:
    from udf.framework.leases import default_holder

    assert default_holder() != default_holder()
    assert str(os.getpid()) in default_holder()


def test_a_metric_day_finished_after_planning_is_not_computed_again(home, ready, clock) -> None:
    [planned] = plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    clock.advance(seconds=1)  # meanwhile another run computes click ...
    compute_batch(home, batch(["click"]), holder="other", store=ready, compute=FakeCompute())
    clock.advance(seconds=1)  # ... and a concurrent plan, which read it before, re-queues it
    ready.set_run_state("click", DS, "queued", "inputs ready", dag_run_id="run-3")
    fake = FakeCompute()
    summary = compute_batch(home, planned, holder="w1", store=ready, compute=fake)
    assert summary["already_done"] == ["click"] and fake.calls[0]["metrics"] == ["search"]
    assert ready.run("click", DS).state == "done"


def test_task_holders_name_the_try() -> None:
    from udf.framework.leases import task_holder

    first = task_holder("scheduled__2026-01-05", "compute_batch", 3, 1)
    assert first.startswith("scheduled__2026-01-05/compute_batch[3]#1@")
    assert task_holder("scheduled__2026-01-05", "compute_batch", 3, 2) != first


class PartlyFailing(FakeCompute):
    """A compute that reports some metrics failed (a bad custom metric) and the rest done."""

    def __init__(self, failed: dict[str, str], unselected: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.failed, self.unselected = failed, unselected

    def __call__(self, home, metric_type, dates, **kwargs):
        report = super().__call__(home, metric_type, dates, **kwargs)
        report.failed_on = lambda day: self.failed if day in dates else {}
        report.unselected = self.unselected
        return report


def test_a_metric_compute_reports_failed_fails_alone(home, ready, clock) -> None:
    [planned] = plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    reason = "custom metric 'search' returns 2 rows for one user (...)"
    fake = PartlyFailing({"search": reason})
    summary = compute_batch(home, planned, holder="w1", spec=spec(), store=ready, compute=fake)
    assert summary["computed"] == ["click"] and summary["failed"] == {"search": reason}
    assert (ready.run("click", DS).state, ready.run("search", DS).state) == ("done", "failed")
    assert ready.run("search", DS).reason == reason
    assert ready.leases(include_expired=True) == []
    # A failed metric-day is behind: the next run queues it again, alone.
    clock.advance(hours=1)
    [again] = plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    assert again["metrics"] == ["search"]


def test_a_metric_no_experiment_selects_is_done_saying_so(home, ready) -> None:
    compute_batch(home, batch(), holder="w1", store=ready, compute=PartlyFailing({}, ("search",)))
    assert ready.run("click", DS).reason == "computed in a batch of 2 metric(s)"
    assert ready.run("search", DS).reason == (
        "computed in a batch of 2 metric(s); no experiment selects it, so it has no results"
    )


def test_compute_now_records_the_lifecycle_and_recomputes_done_days(home, ready) -> None:
    fake = FakeCompute()
    first = compute_now(home, "aggregated", DS, store=ready, compute=fake, requested_at=T0)
    assert (
        first["computed"] == ["click", "search"] and fake.calls[0]["metrics"] == first["computed"]
    )
    run = ready.run("click", DS)
    assert (run.state, run.dag_run_id) == ("done", "udf_compute__2026-01-01T00:00:00")
    assert [e.to_state for e in run.events] == ["in_progress", "done"]
    # `udf compute` asked again: computed again, not skipped as done.
    again = compute_now(home, "aggregated", DS, metrics=["click"], store=ready, compute=fake)
    assert again["computed"] == ["click"] and ready.run("click", DS).attempt == 2


def test_compute_now_refuses_an_unknown_experiment_before_recording_anything(home, ready) -> None:
    with pytest.raises(InputError, match="unknown experiment 'nosuch'"):
        compute_now(home, "aggregated", DS, scope="nosuch", store=ready, compute=FakeCompute())
    assert ready.runs() == []
