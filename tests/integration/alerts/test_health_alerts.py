"""Health alerts: an experiment period failing its checks is told once, and its recovery once.

Batch rows of an A/A experiment (no metric alert) carry the health checks of
``results.health``: a sample-ratio mismatch from look 6 to 12, healthy before and after.
"""

from __future__ import annotations

from dataclasses import replace

from streaming.alerts import evaluate_alerts
from streaming.alerts.health import HEALTH_SEGMENT
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


def test_a_failing_health_check_alerts_once_and_recovers_once(
    store, clock, smtp, webhook, settings
) -> None:
    set_up(store, catalog(clicks_alert={"direction": "any"}, ctr_alert={"direction": "any"}))
    reports = []
    for rows in _with_health(stream_looks(0.0)):
        clock.advance(minutes=5)
        reports.append(evaluate_alerts(rows, store, settings))
    changes = [(c.key.segment, c.from_state, c.to_state) for r in reports for c in r.changes]
    assert changes == [(HEALTH_SEGMENT, "ok", "alerting"), (HEALTH_SEGMENT, "alerting", "ok")]
    assert [i for i, r in enumerate(reports, start=1) if r.changes] == [6, 13]
    subjects = [m.message["Subject"] for m in smtp.received]
    assert subjects == [f"[udf] HEALTH {EXPERIMENT}: srm,multiple_groups",
                        f"[udf] resolved HEALTH {EXPERIMENT}: every check passes"]  # fmt: skip
    assert all(m.rcpt_tos == [OWNER] for m in smtp.received)
    first = smtp.received[0].message.get_body(preferencelist=("plain",)).get_content()
    assert "fails its health checks: srm,multiple_groups (SRM p-value 1e-09)" in first
    assert len(webhook.posts) == 2 and webhook.posts[0].json()["alert"]["p_value"] == 1e-9
    health = [s for s in store.alert_states() if s.key.segment == HEALTH_SEGMENT]
    assert [(s.state, s.looks, s.changes) for s in health] == [("ok", 20, 2)]
