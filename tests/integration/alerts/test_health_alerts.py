"""Health alerts: an experiment period failing its checks is told once, and its recovery once.

Batch rows of an A/A experiment (no metric alert) carry the health checks of
``results.health``: a sample-ratio mismatch from look 6 to 12, healthy before and after.
The stream's real-time health state is told once when two looks agree, and its recovery
once.
"""

from __future__ import annotations

from dataclasses import replace

from streaming.alerts import evaluate_alerts
from streaming.alerts.health import HEALTH_SEGMENT, REALTIME_SEGMENT
from streaming.alerts.stream import Confirm, hold_alerts
from streaming.health import RealtimeHealth
from tests.support.alert_looks import EXPERIMENT, OWNER, catalog, set_up, stream_looks


def _with_health(flushes):
    out = []
    for k, rows in enumerate(flushes, start=1):
        bad = 6 <= k <= 12
        out.append([
            replace(r, source="batch", health="srm,multiple_groups" if bad else "",
                    srm_p_value=1e-9 if bad else 0.4, multiple_groups=3 if bad else 0)
            for r in rows
        ])  # fmt: skip
    return out


def told(reports, smtp) -> tuple[list[tuple[str, str, str]], list[int], list[str]]:
    """The changes of state (segment, from, to), the looks that made them, the subjects sent."""
    changes = [(c.key.segment, c.from_state, c.to_state) for r in reports for c in r.changes]
    looks = [i for i, r in enumerate(reports, start=1) if r.changes]
    return changes, looks, [m.message["Subject"] for m in smtp.received]


def test_a_failing_health_check_alerts_once_and_recovers_once(
    store, clock, smtp, webhook, settings
) -> None:
    set_up(store, catalog(clicks_alert={"direction": "any"}, ctr_alert={"direction": "any"}))
    reports = []
    for rows in _with_health(stream_looks(0.0)):
        clock.advance(minutes=5)
        reports.append(evaluate_alerts(rows, store, settings))
    changes, looks, subjects = told(reports, smtp)
    assert changes == [(HEALTH_SEGMENT, "ok", "alerting"), (HEALTH_SEGMENT, "alerting", "ok")]
    assert looks == [6, 13]
    assert subjects == [f"[udf] HEALTH {EXPERIMENT}: srm,multiple_groups",
                        f"[udf] resolved HEALTH {EXPERIMENT}: every check passes"]  # fmt: skip
    assert all(m.rcpt_tos == [OWNER] for m in smtp.received)
    first = smtp.received[0].message.get_body(preferencelist=("plain",)).get_content()
    assert "fails its health checks: srm,multiple_groups (SRM p-value 1e-09)" in first
    assert len(webhook.posts) == 2 and webhook.posts[0].json()["alert"]["p_value"] == 1e-9
    health = [s for s in store.alert_states() if s.key.segment == HEALTH_SEGMENT]
    assert [(s.state, s.looks, s.changes) for s in health] == [("ok", 20, 2)]


def test_a_realtime_srm_alerts_and_recovers_once_each_after_two_agreeing_looks(
    store, clock, smtp, webhook, settings
) -> None:
    """The stream sink's composition (:class:`streaming.alerts.stream.StreamAlerts`): two
    agreeing looks change the state, and, unlike a metric's, it is not held."""
    set_up(store, catalog(clicks_alert={"direction": "any"}))
    confirm, reports = Confirm(), []
    for k, rows in enumerate(stream_looks(0.0), start=1):
        clock.advance(minutes=5)
        bad = 6 <= k <= 12
        units = sum(r.exposed for r in rows if r.metric == "clicks")
        health = [RealtimeHealth(rows[0].period_start, 1e-6 if bad else 0.5, units, 0.001,
                                 "srm" if bad else "")]  # fmt: skip
        alerting = {s.key for s in store.alert_states(experiment=EXPERIMENT, state="alerting")
                    if s.key.segment != REALTIME_SEGMENT}  # fmt: skip
        reports.append(evaluate_alerts(
            rows, store, settings, realtime=health,
            confirm=lambda looks, held=alerting: hold_alerts(confirm(looks), held),
        ))  # fmt: skip
    changes, looks, subjects = told(reports, smtp)
    assert changes == [(REALTIME_SEGMENT, "ok", "alerting"), (REALTIME_SEGMENT, "alerting", "ok")]
    assert looks == [7, 14]
    assert subjects == [f"[udf] REAL-TIME HEALTH {EXPERIMENT}: srm",
                        f"[udf] resolved REAL-TIME HEALTH {EXPERIMENT}: every check passes"]  # fmt: skip
    body = smtp.received[0].message.get_body(preferencelist=("plain",)).get_content()
    assert "fails its real-time health checks: srm (always-valid SRM p-value 1e-06" in body
    assert len(webhook.posts) == 2
    first = webhook.posts[0].json()["alert"]
    assert (first["p_value"], first["state"], first["method"]) == (
        1e-6, "alerting", "always_valid_srm",
    )  # fmt: skip
    [state] = [s for s in store.alert_states() if s.key.segment == REALTIME_SEGMENT]
    assert (state.state, state.looks, state.changes) == ("ok", 20, 2)
    # the batch health state is not touched by stream looks
    assert all(s.key.segment != HEALTH_SEGMENT for s in store.alert_states())
