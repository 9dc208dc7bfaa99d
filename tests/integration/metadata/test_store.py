"""Experiments, ramps and the catalog on every backend."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from metadata.records import RampRow
from udf.config.catalog import (
    AggregatedMetric,
    AnalysisSpec,
    CustomMetric,
    DaysInMetric,
    ExperimentSelection,
    SegmentSpec,
)

ROWS = [
    RampRow("exp", "control", 1767225600000, 5.0),
    RampRow("exp", "control", 1767312000000, 10.0),
    RampRow("exp", "treatment", 1767225600000, 5.0),
    RampRow("exp2", "control", 1767225600000, 50.0),
]


def test_import_ramps_is_idempotent(store) -> None:
    first = store.import_ramps(ROWS)
    assert (first.experiments_added, first.groups_added, first.ramps_added) == (2, 3, 4)
    assert first.changed

    again = store.import_ramps(ROWS)
    assert not again.changed
    assert (again.ramps_added, again.ramps_updated, again.ramps_unchanged) == (0, 0, 4)

    more = store.import_ramps([*ROWS, RampRow("exp", "treatment", 1767312000000, 10.0)])
    assert (more.ramps_added, more.ramps_unchanged, more.groups_added) == (1, 4, 0)

    corrected = store.import_ramps([RampRow("exp2", "control", 1767225600000, 40.0)])
    assert corrected.ramps_updated == 1

    exp, exp2 = store.experiments()
    assert exp.name == "exp"
    assert [(g.name, g.is_control) for g in exp.groups] == [("control", True), ("treatment", False)]
    assert [r.ramp_ts for r in exp.groups[0].ramps] == [1767225600000, 1767312000000]
    assert exp2.groups[0].ramps[0].allocation == 40.0
    assert store.experiment("nope") is None
    assert exp.created_at.tzinfo is not None


def _catalog(owners: list[str], sla: float = 30.0):
    metrics = [
        AggregatedMetric(
            type="aggregated", name="clicks", event_type="click", owners=owners, sla_hours=sla
        ),
        DaysInMetric(type="days_in", name="clicks_d", event_type="click", days=[1, 7]),
        CustomMetric(
            type="custom",
            name="odd",
            sql="SELECT experiment, `group`, period_start, user_id, 1 AS value FROM exposures",
            segments=["country"],
        ),
    ]
    segments = [SegmentSpec(name="country", field="country")]
    selections = [
        ExperimentSelection(experiment="exp_new", metrics=["clicks", "odd"], segments=["country"])
    ]
    return metrics, segments, selections


def test_sync_catalog_upserts_and_replaces_owners(store) -> None:
    metrics, segments, selections = _catalog(["a@example.com", "b@example.com"])
    first = store.sync_catalog(metrics, segments, selections, {"clicks": "catalog/clicks.yaml"})
    assert (first.metrics_added, first.segments_added, first.experiments_added) == (3, 1, 1)
    assert first.selections_changed == 1

    again = store.sync_catalog(metrics, segments, selections, {"clicks": "catalog/clicks.yaml"})
    assert not again.changed
    assert again.metrics_unchanged == 3

    metrics, segments, selections = _catalog(["b@example.com", "c@example.com"], sla=12.0)
    changed = store.sync_catalog(metrics, segments, selections, {"clicks": "catalog/clicks.yaml"})
    assert (changed.metrics_updated, changed.metrics_unchanged) == (1, 2)

    by_name = {m.name: m for m in store.metrics()}
    clicks = by_name["clicks"]
    assert clicks.owners == ("b@example.com", "c@example.com")
    assert clicks.sla_hours == 12.0
    assert clicks.params == {"event_type": "click", "statistic": "count"}
    assert clicks.source_file == "catalog/clicks.yaml"
    assert by_name["clicks_d"].params["days"] == [1, 7]
    assert by_name["odd"].segments == ("country",)

    (exp,) = store.experiments()  # created by the selection, no ramps yet
    assert (exp.name, exp.groups, exp.metrics, exp.segments) == (
        "exp_new",
        (),
        ("clicks", "odd"),
        ("country",),
    )

    assert exp.analysis == AnalysisSpec().model_dump()  # the defaults: no correction

    # A changed analysis spec is a changed selection and is stored as given.
    strict = AnalysisSpec(
        alpha=0.01,
        correction="holm",
        correct_over=["metric", "segment"],
        sequential="obrien_fleming",
        looks=5,
    )
    reconfigured = store.sync_catalog(
        metrics, segments, [selections[0].model_copy(update={"analysis": strict})]
    )
    assert reconfigured.selections_changed == 1
    assert store.experiment("exp_new").analysis == strict.model_dump()

    # Without prune, a partial catalog leaves everything else alone.
    partial = store.sync_catalog(metrics[:1], [], [])
    assert not partial.changed
    assert len(store.metrics()) == 3
    assert store.experiment("exp_new").metrics == ("clicks", "odd")

    # With prune, a metric dropped from the catalog is disabled and deselected.
    dropped = store.sync_catalog(
        metrics[:2],
        segments,
        [ExperimentSelection(experiment="exp_new", metrics=["clicks"])],
        prune=True,
    )
    assert (dropped.metrics_disabled, dropped.selections_changed) == (1, 1)
    assert [m.name for m in store.metrics()] == ["clicks", "clicks_d"]
    assert not {m.name: m for m in store.metrics(include_disabled=True)}["odd"].enabled
    assert store.experiment("exp_new").metrics == ("clicks",)
    assert store.experiment("exp_new").segments == ()


def test_selections_change_by_many_ids_at_once(store, monkeypatch) -> None:
    """Selections are inserted and deleted in bulk statements, the deletions in chunks of
    ids (here of 2): a selection that loses 5 of 7 metrics keeps exactly the other 2, and
    another experiment's selection is untouched."""
    from metadata import _sync

    monkeypatch.setattr(_sync, "PAIRS_PER_STATEMENT", 2)
    metrics = [AggregatedMetric(type="aggregated", name=f"m{i}", event_type="click")
               for i in range(7)]  # fmt: skip
    names = [m.name for m in metrics]
    both = [ExperimentSelection(experiment=e, metrics=names) for e in ("a", "b")]
    assert store.sync_catalog(metrics, [], both).selections_changed == 2
    assert store.experiment("a").metrics == tuple(names)
    fewer = store.sync_catalog(metrics, [], [ExperimentSelection(experiment="a",
                                                                  metrics=["m2", "m5"])])  # fmt: skip
    assert fewer.selections_changed == 1
    assert store.experiment("a").metrics == ("m2", "m5")
    assert store.experiment("b").metrics == tuple(names)


def test_sync_catalog_rejects_unknown_selection(store) -> None:
    import pytest

    from udf.errors import MetadataError

    metrics, segments, _ = _catalog([])
    with pytest.raises(MetadataError, match="unknown metric 'nope'"):
        store.sync_catalog(
            metrics, segments, [ExperimentSelection(experiment="e", metrics=["nope"])]
        )
    assert store.metrics() == []  # nothing half-synced


def test_concurrent_imports_of_a_new_experiment_all_succeed(store_factory) -> None:
    # Each importer creates the same new experiment: the losers used to fail with "the
    # ramps changed concurrently"; now they go again and find the winner's rows.
    contenders = 6
    stores = [store_factory() for _ in range(contenders)]
    barrier = threading.Barrier(contenders, timeout=60)

    def contend(i: int) -> int:
        barrier.wait()
        return stores[i].import_ramps([RampRow("raced", "control", 1000 + i, 10.0)]).ramps_added

    with ThreadPoolExecutor(contenders) as pool:
        assert list(pool.map(contend, range(contenders))) == [1] * contenders
    (exp,) = stores[0].experiments()
    (group,) = exp.groups
    assert [r.ramp_ts for r in group.ramps] == [1000 + i for i in range(contenders)]
