"""Run lifecycle and notifications on every backend."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest

from udf.config.catalog import AggregatedMetric
from udf.errors import MetadataError

DS = date(2026, 1, 1)


@pytest.fixture
def catalogued(store):
    store.sync_catalog(
        [AggregatedMetric(type="aggregated", name="clicks", event_type="click")], [], []
    )
    return store


def test_lifecycle_is_recorded_with_timestamps_and_reasons(catalogued, clock) -> None:
    store = catalogued
    waiting = store.set_run_state("clicks", DS, "waiting_on_source", reason="events not landed")
    assert (waiting.state, waiting.attempt, waiting.metric_type) == (
        "waiting_on_source",
        0,
        "aggregated",
    )
    assert waiting.started_at is None

    clock.advance(hours=2)
    store.set_run_state("clicks", DS, "queued", reason="sources ready", dag_run_id="run-1")
    clock.advance(minutes=5)
    started = store.set_run_state("clicks", DS, "in_progress")
    assert (started.attempt, started.started_at, started.dag_run_id) == (1, clock.now, "run-1")
    clock.advance(minutes=3)
    done = store.set_run_state("clicks", DS, "done")
    assert done.finished_at == clock.now
    assert done.duration_seconds == pytest.approx(180.0)

    run = store.run("clicks", DS)
    assert [(e.from_state, e.to_state, e.reason) for e in run.events] == [
        (None, "waiting_on_source", "events not landed"),
        ("waiting_on_source", "queued", "sources ready"),
        ("queued", "in_progress", None),
        ("in_progress", "done", None),
    ]
    assert run.events[-1].at == clock.now
    assert run.events[0].at == clock.now - timedelta(hours=2, minutes=8)


def test_repeating_a_state_is_a_no_op_and_retries_count_attempts(catalogued, clock) -> None:
    store = catalogued
    store.set_run_state("clicks", DS, "in_progress")
    clock.advance(minutes=1)
    store.set_run_state("clicks", DS, "failed", reason="OOM")
    clock.advance(minutes=1)
    retry = store.set_run_state("clicks", DS, "in_progress")
    assert (retry.attempt, retry.finished_at, retry.duration_seconds) == (2, None, None)
    store.set_run_state("clicks", DS, "in_progress")  # same state, same reason: no new event
    assert len(store.run("clicks", DS).events) == 3


def test_runs_filters_and_scopes(catalogued) -> None:
    store = catalogued
    store.set_run_state("clicks", DS, "skipped", reason="SLA missed")
    store.set_run_state("clicks", DS + timedelta(days=1), "backfill_queued")
    store.set_run_state("clicks", DS, "queued", scope="exp_001")  # on-demand, separate run
    assert len(store.runs()) == 3
    assert [r.ds for r in store.runs(states=["skipped", "backfill_queued"], scope="")] == [
        DS,
        DS + timedelta(days=1),
    ]
    assert [r.scope for r in store.runs(ds_from=DS, ds_to=DS)] == ["", "exp_001"]
    assert store.runs(metric="other") == []


def test_bad_states_and_unknown_metrics_are_refused(catalogued) -> None:
    with pytest.raises(MetadataError, match="unknown run state"):
        catalogued.set_run_state("clicks", DS, "exploded")
    with pytest.raises(MetadataError, match="unknown metric"):
        catalogued.set_run_state("nope", DS, "queued")


def test_notifications_ledger(store, clock) -> None:
    first = store.record_notification("a@example.com", "skipped", "clicks skipped", run_ids=[3, 1])
    store.record_notification("b@example.com", "delayed", "clicks late")
    failed = store.mark_notification(first, "failed", error="SMTP 451")
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 1, "SMTP 451")
    clock.advance(minutes=10)
    sent = store.mark_notification(first, "sent")
    assert (sent.state, sent.attempts, sent.sent_at, sent.run_ids) == ("sent", 2, clock.now, (1, 3))
    assert [n.recipient for n in store.notifications(state="pending")] == ["b@example.com"]
    with pytest.raises(MetadataError):
        store.mark_notification(9999, "sent")


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_callers_creating_the_same_run_all_succeed(
    catalogued, store_factory, round_
) -> None:
    # Several workers (separate engines and connections) record the first state of the
    # same new run at once, then keep changing it. On MariaDB a SELECT ... FOR UPDATE of the
    # missing row took gap locks and the inserts deadlocked (error 1213) in most rounds.
    contenders, steps = 6, 4
    stores = [store_factory() for _ in range(contenders)]
    barrier = threading.Barrier(contenders, timeout=60)
    days = [DS + timedelta(days=d) for d in range(steps)]

    def contend(i: int) -> list[str]:
        states = []
        for ds in days:
            barrier.wait()
            state = "queued" if i % 2 else "in_progress"
            try:
                info = stores[i].set_run_state("clicks", ds, state, reason=f"worker {i}")
            except BaseException:
                barrier.abort()  # release the others: the first failure is the one reported
                raise
            assert (info.ds, info.state, info.reason) == (ds, state, f"worker {i}")
            states.append(info.state)
        return states

    with ThreadPoolExecutor(contenders) as pool:
        results = list(pool.map(contend, range(contenders)))  # re-raises any failure
    assert len(results) == contenders

    runs = catalogued.runs(metric="clicks", with_events=True)
    assert [r.ds for r in runs] == days  # one run per day, never two
    for run in runs:
        # Every call changed the reason, so each left exactly one event, chained in order.
        assert len(run.events) == contenders
        assert run.events[0].from_state is None
        for before, after in zip(run.events, run.events[1:], strict=False):
            assert after.from_state == before.to_state
        assert {e.reason for e in run.events} == {f"worker {i}" for i in range(contenders)}
        assert (run.state, run.reason) == (run.events[-1].to_state, run.events[-1].reason)
        assert run.attempt == sum(e.to_state == "in_progress" for e in run.events)
