"""Planning a run: every metric-day ends up queued, waiting, backfilled, skipped or left alone.

Runs on SQLite here and on PostgreSQL and MariaDB from tests/integration/framework.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.framework.support import DS, add_experiment, add_metrics, seal_through
from udf.errors import InputError
from udf.framework.leases import LOST_REASON, lease_key
from udf.framework.plan import RunConf, parse_run_conf, plan_run
from udf.framework.spec import PipelineSpec


def spec(**args: object) -> PipelineSpec:
    return PipelineSpec.model_validate({"metric_type": "aggregated", "dag_creation_args": args})


def states(store, day=DS, scope=""):
    return {r.metric: (r.state, r.reason) for r in store.runs(ds_from=day, ds_to=day, scope=scope)}


@pytest.fixture
def ready(home, store):
    """Two metrics, an experiment, and both topics sealed through DS."""
    add_metrics(store, "click", "search")
    add_experiment(store)
    seal_through(home, DS)
    return store


def test_ready_metrics_are_queued_in_a_batch_with_the_dag_run(home, ready, clock) -> None:
    batches = plan_run(
        home, spec(backfill_days=0), DS, dag_run_id="scheduled__1", store=ready, now=clock.now
    )
    assert batches == [
        {
            "metric_type": "aggregated",
            "ds": "2026-01-05",
            "metrics": ["click", "search"],
            "scope": "",
            "dag_run_id": "scheduled__1",
            "estimate_seconds": 120.0,
            "planned_at": clock.now.isoformat(),
        }
    ]
    assert states(ready) == {
        "click": ("queued", "inputs ready"),
        "search": ("queued", "inputs ready"),
    }
    assert {r.dag_run_id for r in ready.runs()} == {"scheduled__1"}


def test_metrics_whose_sources_are_late_wait_while_the_others_go(home, store, clock) -> None:
    add_metrics(store, "click")
    add_metrics(store, "exposures", sources=["activations"])
    add_experiment(store)
    seal_through(home, DS, topics=("activations",))
    seal_through(home, DS - timedelta(days=1), topics=("events",))
    batches = plan_run(home, spec(backfill_days=0), DS, store=store, now=clock.now)
    assert [b["metrics"] for b in batches] == [["exposures"]]
    state, reason = states(store)["click"]
    assert state == "waiting_on_source"
    assert "events closed only through 2026-01-05T00:00Z" in reason
    clock.advance(hours=4)  # still late: the wait is not recorded again
    plan_run(home, spec(backfill_days=0), DS, store=store, now=clock.now, dag_run_id="again")
    assert len(store.run("click", DS).events) == 1
    # The events land later: the next run takes click, first come first served.
    seal_through(home, DS, topics=("events",))
    clock.advance(hours=4)
    batches = plan_run(home, spec(backfill_days=0), DS, store=store, now=clock.now)
    assert [b["metrics"] for b in batches] == [["click", "exposures"]]
    run = store.run("click", DS)
    assert [e.to_state for e in run.events] == ["waiting_on_source", "queued"]
    assert run.reason == "inputs ready (was waiting_on_source: " + reason + ")"


def test_the_look_back_backfills_missing_failed_waiting_and_skipped_days(
    home, ready, clock
) -> None:
    d1, d2, d3 = DS - timedelta(days=1), DS - timedelta(days=2), DS - timedelta(days=3)
    ready.set_run_state("click", d1, "failed", "RuntimeError: boom")
    ready.set_run_state("click", d2, "waiting_on_source", "events late")
    ready.set_run_state("click", d3, "skipped", "outside the 1-day backfill window")
    ready.set_run_state("search", d1, "done")
    ready.set_run_state("search", d2, "done")
    ready.set_run_state("search", d3, "done")
    clock.advance(hours=1)
    batches = plan_run(home, spec(backfill_days=3), DS, store=ready, now=clock.now)
    assert states(ready, d1)["click"] == (
        "backfill_queued",
        "backfill after failed: RuntimeError: boom",
    )
    assert states(ready, d2)["click"] == (
        "backfill_queued",
        "backfill after waiting_on_source: events late",
    )
    assert states(ready, d3)["click"][0] == "backfill_queued"
    assert states(ready, d1)["search"][0] == "done"  # done days are left alone
    planned = {(b["ds"], m) for b in batches for m in b["metrics"]}
    assert planned == {
        (str(d3), "click"),
        (str(d2), "click"),
        (str(d1), "click"),
        (str(DS), "click"),
        (str(DS), "search"),
    }
    assert all(len({b["ds"]}) == 1 for b in batches)


def test_never_computed_days_in_the_window_are_backfilled(home, ready, clock) -> None:
    plan_run(home, spec(backfill_days=2), DS, store=ready, now=clock.now)
    assert states(ready, DS - timedelta(days=2))["click"] == (
        "backfill_queued",
        "backfill: never computed, inputs ready",
    )
    assert states(ready, DS)["click"] == ("queued", "inputs ready")


def test_past_the_window_unfinished_days_are_skipped_with_their_last_state(
    home, ready, clock
) -> None:
    old = DS - timedelta(days=5)
    ready.set_run_state("click", old, "waiting_on_source", "events closed only through X")
    ready.set_run_state("search", old, "done")
    pipeline = spec(backfill_days=3, start_date="2025-12-01")
    plan_run(home, pipeline, DS, store=ready, now=clock.now, dag_run_id="r2")
    assert states(ready, old) == {
        "click": (
            "skipped",
            "outside the 3-day backfill window (last waiting_on_source: "
            "events closed only through X)",
        ),
        "search": ("done", None),
    }
    assert ready.run("click", old).dag_run_id == "r2"


def test_gaps_before_the_window_are_marked_skipped_for_tracked_metrics(home, ready, clock) -> None:
    ready.set_run_state("click", DS - timedelta(days=7), "done")  # then the scheduler was down
    plan_run(home, spec(backfill_days=3, start_date="2025-12-01"), DS, store=ready, now=clock.now)
    gap = "outside the 3-day backfill window (never computed)"
    for back in (6, 5, 4):
        assert states(ready, DS - timedelta(days=back)) == {"click": ("skipped", gap)}
    assert states(ready, DS - timedelta(days=7)) == {"click": ("done", None)}
    # "search" has no earlier history: it is new, and its past is not called skipped.
    assert [r.ds for r in ready.runs(metric="search")] == [
        DS - timedelta(days=d) for d in (3, 2, 1, 0)
    ]


def test_a_metric_in_progress_elsewhere_is_excluded(home, ready, clock) -> None:
    assert ready.acquire_lease(lease_key("click", DS), "worker-a", 300)
    ready.set_run_state("click", DS, "in_progress")
    batches = plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    assert [b["metrics"] for b in batches] == [["search"]]
    assert states(ready)["click"] == ("in_progress", None)


def test_an_expired_lease_requeues_the_metric_day(home, ready, clock) -> None:
    assert ready.acquire_lease(lease_key("click", DS), "worker-a", 300)
    ready.set_run_state("click", DS, "in_progress")
    clock.advance(seconds=301)  # the worker died: no heartbeat
    batches = plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now)
    assert [b["metrics"] for b in batches] == [["click", "search"]]
    assert states(ready)["click"] == ("backfill_queued", LOST_REASON)
    assert ready.leases(include_expired=True) == []


def test_done_days_are_recomputed_only_when_forced_and_only_once(home, ready, clock) -> None:
    for metric in ("click", "search"):
        ready.set_run_state(metric, DS, "done")
    assert plan_run(home, spec(backfill_days=0), DS, store=ready, now=clock.now) == []
    asked = clock.now + timedelta(seconds=1)
    clock.advance(minutes=1)
    batches = plan_run(
        home,
        spec(backfill_days=0),
        DS,
        store=ready,
        now=clock.now,
        force=True,
        requested_at=asked,
        metrics=["click"],
    )
    assert [b["metrics"] for b in batches] == [["click"]]
    assert states(ready)["click"] == ("queued", "recompute requested")
    ready.set_run_state("click", DS, "in_progress")
    clock.advance(minutes=1)
    ready.set_run_state("click", DS, "done")  # recomputed after the request: not again
    again = plan_run(
        home,
        spec(backfill_days=0),
        DS,
        store=ready,
        now=clock.now,
        force=True,
        requested_at=asked,
        metrics=["click"],
    )
    assert again == []


def test_force_never_recomputes_the_look_back_days(home, ready, clock) -> None:
    for day in (DS - timedelta(days=1), DS):
        for metric in ("click", "search"):
            ready.set_run_state(metric, day, "done")
    batches = plan_run(home, spec(backfill_days=1), DS, store=ready, now=clock.now, force=True)
    assert {b["ds"] for b in batches} == {str(DS)}


def test_an_on_demand_run_is_scoped_to_its_experiment(home, ready, clock) -> None:
    ready.set_run_state("click", DS, "done")  # the daily run is independent of the scope
    batches = plan_run(home, spec(backfill_days=3), DS, scope="exp", store=ready, now=clock.now)
    assert [(b["scope"], b["ds"], b["metrics"]) for b in batches][-1] == (
        "exp",
        str(DS),
        ["click", "search"],
    )
    assert states(ready, scope="exp") == {
        "click": ("queued", "inputs ready"),
        "search": ("queued", "inputs ready"),
    }
    # Nothing outside the window is marked for an on-demand scope.
    assert ready.runs(ds_to=DS - timedelta(days=4), scope="exp") == []
    missing = plan_run(home, spec(backfill_days=0), DS, scope="nope", store=ready, now=clock.now)
    assert missing == []
    assert "'nope' is not in the metadata store" in states(ready, scope="nope")["click"][1]


def test_start_date_bounds_the_look_back(home, ready, clock) -> None:
    plan_run(
        home,
        spec(backfill_days=3, start_date=str(DS - timedelta(days=1))),
        DS,
        store=ready,
        now=clock.now,
    )
    assert ready.runs(ds_to=DS - timedelta(days=2)) == []


def test_unknown_metrics_are_refused_and_other_types_ignored(home, ready, clock) -> None:
    with pytest.raises(InputError, match="no enabled aggregated metric named 'nope'"):
        plan_run(home, spec(), DS, metrics=["nope"], store=ready, now=clock.now)
    other = PipelineSpec.model_validate({"metric_type": "calendar_day"})
    assert plan_run(home, other, DS, store=ready, now=clock.now) == []


def test_run_conf_round_trips_and_refuses_nonsense() -> None:
    conf = parse_run_conf(
        {"scope": "exp", "metrics": ["click"], "force": True, "requested_at": "2026-01-06T00:00:00",
         "from_date": "2026-01-02", "to_date": "2026-01-04"}
    )  # fmt: skip
    assert conf.scope == "exp" and conf.metrics == ("click",) and conf.force
    assert (conf.from_date, conf.to_date) == (DS - timedelta(days=3), DS - timedelta(days=1))
    assert parse_run_conf(conf.as_conf()) == conf
    assert parse_run_conf(None) == RunConf()
    assert conf.plan_kwargs()["metrics"] == ["click"]
    for bad in (
        {"scope": 3},
        {"metrics": "click"},
        {"force": "yes"},
        {"typo": 1},
        {"requested_at": "soon"},
        {"scope": "../x"},
        {"from_date": "2026-13-01"},
        {"from_date": "2026-01-04", "to_date": "2026-01-02"},
    ):
        with pytest.raises(InputError):
            parse_run_conf(bad)


def test_default_metrics_of_the_archives_event_types_are_planned(
    home, store, clock, tmp_path
) -> None:
    from udf.archive.importer import Importer

    events = tmp_path / "events.jsonl"
    ts = int(clock.now.timestamp() * 1000) - 6 * 3_600_000  # on DS
    events.write_text(
        "".join(
            f'{{"user_id": {u}, "event_type": "{t}", "ts": {ts}}}\n'
            for u, t in ((1, "click"), (2, "view"), (3, "click"))
        )
    )
    later = tmp_path / "later.jsonl"  # a type first seen after DS is not DS's metric
    later.write_text(f'{{"user_id": 4, "event_type": "share", "ts": {ts + 86_400_000}}}\n')
    Importer(home).import_files("events", [str(events), str(later)])
    add_experiment(store)
    seal_through(home, DS)
    batches = plan_run(home, spec(backfill_days=0), DS, store=store, now=clock.now)
    assert [b["metrics"] for b in batches] == [["click", "view"]]
    assert {m.name: m.metric_type for m in store.metrics()} == {
        "click": "aggregated",
        "view": "aggregated",
    }
    # Learnt from the importer's ledger: no hour was converted to Parquet to find them.
    assert not (home.root / "columnar").exists()


def test_unselected_metrics_are_recorded_once_and_never_batched_skipped_or_late(
    home, store, clock
) -> None:
    add_metrics(store, "click", "orphan")
    add_experiment(store, metrics=["click"])
    seal_through(home, DS)
    pipeline = spec(backfill_days=1, start_date="2025-12-01")
    batches = plan_run(home, pipeline, DS, store=store, now=clock.now)
    assert [b["metrics"] for b in batches] == [["click"], ["click"]]  # DS - 1 and DS
    why = "no experiment selects it (the catalog's experiments[].metrics)"
    assert states(store)["orphan"] == ("not_selected", why)
    # Re-planned later, past the window: recorded once, and never turned into "skipped".
    plan_run(home, pipeline, DS + timedelta(days=3), store=store, now=clock.now + timedelta(days=3))
    orphan = store.run("orphan", DS)
    assert orphan.state == "not_selected" and len(orphan.events) == 1
    # Selected later: the next run within the window computes it.
    add_experiment(store, metrics=["click", "orphan"])
    later = plan_run(home, pipeline, DS, store=store, now=clock.now)
    assert any("orphan" in b["metrics"] for b in later)
    assert states(store)["orphan"] == ("queued", f"inputs ready (was not_selected: {why})")


def test_no_day_before_the_start_date_or_the_requested_range_is_planned(home, ready, clock) -> None:
    start = DS - timedelta(days=1)
    pipeline = spec(backfill_days=3, start_date=str(start))
    assert plan_run(home, pipeline, start - timedelta(days=1), store=ready, now=clock.now) == []
    assert ready.runs() == []  # a run before the start date records nothing at all
    ranged = plan_run(
        home, spec(backfill_days=3, start_date="2025-12-01"), DS, store=ready, now=clock.now,
        from_date=DS, to_date=DS,
    )  # fmt: skip
    assert {b["ds"] for b in ranged} == {DS.isoformat()}
    assert {r.ds for r in ready.runs()} == {DS}
    assert plan_run(home, pipeline, DS, store=ready, now=clock.now, to_date=start) == []
