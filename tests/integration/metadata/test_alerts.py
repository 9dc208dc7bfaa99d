"""Alert states in the store: one change per change of state, on every backend.

A change updates the state, writes the event and queues its messages in one transaction;
repeating a look, a stale look or a look without inference changes nothing. Evaluators in
separate processes recording the same looks at once are tested end to end, with their
deliveries, in tests/integration/alerts.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from metadata.records import AlertKey, AlertLook, Findings, Outgoing
from tests.support.alert_looks import EXPERIMENT, START_MS, catalog, set_up

KEY = AlertKey(EXPERIMENT, "treatment", "clicks", START_MS)
DAY = date(2026, 1, 6)


def look(state: str | None, units: int = 100, day: date = DAY, key: AlertKey = KEY) -> AlertLook:
    moved = "decrease" if state == "alerting" else ""
    found = Findings(
        day=day,
        units=units,
        method="msprt",
        alpha=0.05,
        moved=moved,
        p_value=0.01 if moved else 0.5,
        lift_abs=-0.5,
        lift_rel=-0.2,
        ci_low=-0.9,
        ci_high=-0.1 if moved else 0.3,
    )
    return AlertLook(key, state, found)


def messages(change) -> list[Outgoing]:
    return [
        Outgoing("ana@example.com", "alert", f"to {change.to_state}", "mail body"),
        Outgoing("ops", "alert_webhook", f"to {change.to_state}", "{}"),
    ]


def test_each_change_is_recorded_once_with_its_messages(store, clock) -> None:
    set_up(store)
    assert store.record_alert_looks([look("ok")], messages) == []
    clock.advance(minutes=5)
    [change] = store.record_alert_looks([look("alerting", 200)], messages)
    assert (change.key, change.from_state, change.to_state, change.at) == (
        KEY,
        "ok",
        "alerting",
        clock.now,
    )
    queued = store.notifications()
    assert [(n.recipient, n.kind, n.state, n.alert_event_id, n.subject) for n in queued] == [
        ("ana@example.com", "alert", "pending", change.id, "to alerting"),
        ("ops", "alert_webhook", "pending", change.id, "to alerting"),
    ]
    for units in (300, 400):  # still alerting: nothing new
        assert store.record_alert_looks([look("alerting", units)], messages) == []
    clock.advance(minutes=5)
    [back] = store.record_alert_looks([look("ok", 500)], messages)
    assert (back.from_state, back.to_state) == ("alerting", "ok")
    assert len(store.notifications()) == 4

    [state] = store.alert_states()
    assert (state.key, state.state, state.changes, state.looks) == (KEY, "ok", 2, 5)
    assert state.found.units == 500 and state.changed_at == clock.now
    history = store.alert_changes()
    assert [(c.from_state, c.to_state, c.found.units) for c in history] == [
        ("ok", "alerting", 200),
        ("alerting", "ok", 500),
    ]
    assert (
        store.alert_states(experiment="other") == [] and store.alert_changes(experiment="x") == []
    )


def test_stale_looks_and_looks_without_inference_change_nothing(store) -> None:
    set_up(store)
    first = store.record_alert_looks([look("alerting", 600, day=date(2026, 1, 7))], messages)
    assert [c.to_state for c in first] == ["alerting"]
    assert store.record_alert_looks([look("ok", 900, day=DAY)], messages) == []  # older day
    assert store.record_alert_looks([look("ok", 300, day=date(2026, 1, 7))], messages) == []
    assert store.record_alert_looks([look(None, 700, day=date(2026, 1, 7))], messages) == []
    [state] = store.alert_states()
    assert state.state == "alerting" and state.looks == 2 and state.found.units == 700
    # A new comparison first seen without inference starts ``ok``.
    other = replace(KEY, metric="ctr")
    assert store.record_alert_looks([look(None, key=other)], messages) == []
    assert {s.key.metric: s.state for s in store.alert_states()} == {
        "clicks": "alerting",
        "ctr": "ok",
    }
    assert len(store.alert_changes()) == 1 and len(store.notifications()) == 2


def test_looks_at_unknown_names_are_skipped(store) -> None:
    set_up(store)
    unknown = [
        look("alerting", key=replace(KEY, metric="nope")),
        look("alerting", key=replace(KEY, group="nope")),
        look("alerting", key=replace(KEY, experiment="nope")),
    ]
    assert store.record_alert_looks(unknown, messages) == []
    assert store.alert_states() == [] and store.notifications() == []


def test_the_catalog_keeps_its_alert_rules(store) -> None:
    set_up(
        store,
        catalog(
            ctr_alert={"direction": "any", "webhooks": []},
            alerts={"recipients": ["pm@example.com"]},
        ),
    )
    metrics = {m.name: m for m in store.metrics()}
    assert metrics["clicks"].alert == {
        "direction": "decrease",
        "recipients": [],
        "webhooks": None,
        "segments": False,
        "alpha": None,
    }
    assert metrics["ctr"].alert is not None and metrics["ctr"].alert["webhooks"] == []
    experiment = store.experiment(EXPERIMENT)
    assert experiment is not None and experiment.alerts == {
        "enabled": True,
        "recipients": ["pm@example.com"],
        "metrics": {},
    }
    # Switching alerts off is a change of the selection.
    summary = store.sync_catalog([], [], catalog(alerts={"enabled": False}).experiments)
    assert summary.selections_changed == 1
    assert store.experiment(EXPERIMENT).alerts["enabled"] is False  # type: ignore[union-attr]
