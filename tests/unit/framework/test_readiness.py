"""Readiness: sources sealed through the end of ds, the day over, an experiment ramped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.unit.framework.support import DS, T0, add_experiment, add_metrics, seal_through
from udf.archive.seal import datetime_to_ms, seal
from udf.config.catalog import ExperimentSelection
from udf.framework.readiness import check_readiness, slice_end

AFTER = datetime(2026, 1, 6, 2, tzinfo=UTC)


def test_every_type_reads_through_the_end_of_ds() -> None:
    for metric_type in ("aggregated", "calendar_day", "days_in", "custom"):
        assert slice_end(metric_type, DS) == datetime(2026, 1, 6, tzinfo=UTC)


def test_sealed_sources_and_a_ramp_make_a_metric_day_ready(home, store) -> None:
    add_metrics(store, "click")
    add_experiment(store)
    seal_through(home, DS)
    found = check_readiness(home, store.metrics(), [DS], experiments=store.experiments(), now=AFTER)
    assert found.ready == [("click", DS)] and found.waiting == {}


def test_each_metric_waits_only_for_its_own_sources(home, store) -> None:
    add_metrics(store, "click")
    add_metrics(store, "exposures", sources=["activations"])
    add_experiment(store)
    seal(home.archive, "activations", datetime_to_ms(AFTER))
    end_of_hour = datetime(2026, 1, 5, 18, tzinfo=UTC)
    seal(home.archive, "events", datetime_to_ms(end_of_hour))
    found = check_readiness(home, store.metrics(), [DS], experiments=store.experiments(), now=AFTER)
    assert found.ready == [("exposures", DS)]
    assert found.waiting[("click", DS)] == (
        "waiting for sources through 2026-01-06T00:00Z: events closed only through 2026-01-05T18:00Z"
    )


def test_an_unsealed_topic_and_an_unfinished_day_say_so(home, store) -> None:
    add_metrics(store, "click")
    add_experiment(store)
    found = check_readiness(home, store.metrics(), [DS], experiments=store.experiments(), now=AFTER)
    assert "events never sealed (udf data seal)" in found.waiting[("click", DS)]
    assert "activations never sealed" in found.waiting[("click", DS)]
    seal_through(home, DS + timedelta(days=5))  # a producer may seal ahead ...
    early = datetime(2026, 1, 5, 23, tzinfo=UTC)
    found = check_readiness(home, store.metrics(), [DS], experiments=store.experiments(), now=early)
    assert found.waiting[("click", DS)] == "2026-01-05 has not ended yet (ends 2026-01-06T00:00Z)"


def test_experiment_metadata_is_an_input_too(home, store) -> None:
    store.register_default_metrics(["click"])  # a default metric: for every experiment
    seal_through(home, DS)
    none = check_readiness(home, store.metrics(), [DS], experiments=[], now=AFTER)
    assert (
        none.waiting[("click", DS)] == "no experiments in the metadata store yet (udf ramps import)"
    )
    store.sync_catalog([], [], [ExperimentSelection(experiment="later", metrics=["click"])])
    unramped = check_readiness(
        home, store.metrics(), [DS], experiments=store.experiments(), now=AFTER
    )
    assert unramped.waiting[("click", DS)] == "no ramp before 2026-01-06T00:00Z for later"
    add_experiment(store, "early")
    scoped = check_readiness(
        home, store.metrics(), [DS], experiments=store.experiments(), scope="later", now=AFTER
    )
    assert not scoped.is_ready("click", DS)  # an on-demand run needs its own experiment
    assert check_readiness(
        home, store.metrics(), [DS], experiments=store.experiments(), scope="early", now=AFTER
    ).is_ready("click", DS)
    missing = check_readiness(
        home, store.metrics(), [DS], experiments=store.experiments(), scope="nope", now=AFTER
    )
    assert "'nope' is not in the metadata store" in missing.waiting[("click", DS)]


def test_a_metric_no_experiment_selects_is_not_selected_not_waiting(home, store) -> None:
    add_metrics(store, "click", "orphan")
    add_experiment(store, "exp", metrics=["click"])
    seal_through(home, DS)
    found = check_readiness(home, store.metrics(), [DS], experiments=store.experiments(), now=AFTER)
    assert found.ready == [("click", DS)] and found.waiting == {}
    assert found.not_selected == {
        ("orphan", DS): "no experiment selects it (the catalog's experiments[].metrics)"
    }
    # Whatever else is missing: nothing would be computed even with every input there.
    unsealed = check_readiness(
        home, store.metrics(), [DS], experiments=store.experiments(), now=AFTER, closed={}
    )
    assert ("orphan", DS) in unsealed.not_selected and ("click", DS) in unsealed.waiting
    scoped = check_readiness(
        home, store.metrics(), [DS], experiments=store.experiments(), scope="exp", now=AFTER
    )
    assert scoped.not_selected == {("orphan", DS): "experiment exp does not select it"}


def test_days_before_the_selecting_experiments_start_are_not_selected(home, store) -> None:
    add_metrics(store, "click")
    add_experiment(store, "later", ramp=T0 + timedelta(days=10, hours=3))
    seal_through(home, DS)
    found = check_readiness(home, store.metrics(), [DS], experiments=store.experiments(), now=AFTER)
    assert found.not_selected == {
        (
            "click",
            DS,
        ): "its experiments start after 2026-01-05 (later; first ramp 2026-01-11T03:00Z)"
    }
    add_experiment(store, "early", ramp=T0, metrics=["click"])  # one that runs on DS
    assert check_readiness(
        home, store.metrics(), [DS], experiments=store.experiments(), now=AFTER
    ).ready == [("click", DS)]
