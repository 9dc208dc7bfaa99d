"""Alerts over 20 looks of a stream: one email and one webhook call per change, never more.

The looks are the stream's rows of a growing experiment (per-user values drawn with a
fixed seed, cumulated as users arrive, compared by ``compare_groups``): a treatment that
lowers clicks by 20% alerts once, an A/A experiment never; a mail server that is down is
retried until it is back, and an evaluator that restarts, runs beside others or dies while
sending never sends an alert twice.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
from dataclasses import replace

from aiosmtpd.controller import Controller
from click.testing import CliRunner

from metadata.repository import MetadataStore
from streaming.alerts import evaluate_alerts
from tests.integration.alerts.conftest import alert_settings
from tests.integration.framework.conftest import SmtpServer, free_port
from tests.support.alert_looks import (
    EXPERIMENT,
    OWNER,
    catalog,
    evaluate_in_process,
    evaluate_then_die,
    set_up,
    stream_looks,
)
from tests.unit.framework.support import Clock
from udf.cli import main

WATCHED = catalog(ctr_alert={"direction": "any"})  # clicks: decrease; ctr (no effect): any


def evaluate(store, settings, flushes, clock, **kwargs):
    """One evaluation per flush, five minutes apart (as the stream flushes)."""
    reports = []
    for rows in flushes:
        clock.advance(minutes=5)
        reports.append(evaluate_alerts(rows, store, settings, **kwargs))
    return reports


def changes_of(reports) -> list[tuple[str, str]]:
    return [(c.key.metric, c.to_state) for r in reports for c in r.changes]


def test_a_20_percent_drop_sends_one_email_and_one_webhook_over_20_looks(
    store, clock, smtp, webhook, settings
) -> None:
    set_up(store, WATCHED)
    reports = evaluate(store, settings, stream_looks(-0.2), clock)

    assert changes_of(reports) == [("clicks", "alerting")]
    assert reports[0].changes == []  # 150 users a group: not yet conclusive
    fired = next(r for r in reports if r.changes).as_dict()
    assert [(c["metric"], c["from"], c["to"]) for c in fired["changes"]] == [
        ("clicks", "ok", "alerting")
    ]
    assert len(fired["sent"]) == 2 and fired["failed"] == fired["given_up"] == []
    [mail] = smtp.received
    assert mail.rcpt_tos == [OWNER] and mail.mail_from == "alerts@example.com"
    assert mail.message["Subject"].startswith(f"[udf] ALERT {EXPERIMENT}/treatment: clicks down ")
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    assert "clicks is down by" in text and "mixture SPRT" in text and "always valid" in text
    [post] = webhook.posts
    body = post.json()
    assert body["text"].startswith(mail.message["Subject"])
    alert = body["alert"]
    assert (alert["experiment"], alert["group"], alert["metric"]) == (
        EXPERIMENT,
        "treatment",
        "clicks",
    )
    assert (alert["state"], alert["moved"], alert["method"]) == ("alerting", "decrease", "msprt")
    assert -0.3 < alert["lift_rel"] < -0.1 and alert["ci_high"] < 0 < 0.05 - alert["p_value"]
    assert post.headers["Idempotency-Key"] == f"udf-alert-{alert['id']}-ops"

    states = {s.key.metric: s for s in store.alert_states()}
    assert {m: (s.state, s.looks, s.changes) for m, s in states.items()} == {
        "clicks": ("alerting", 20, 1),
        "ctr": ("ok", 20, 0),
    }
    assert states["clicks"].found.units == 2 * 20 * 150
    assert {(n.kind, n.state, n.attempts) for n in store.notifications()} == {
        ("alert", "sent", 1),
        ("alert_webhook", "sent", 1),
    }


def test_an_aa_workload_alerts_nobody_over_20_looks(store, clock, smtp, webhook, settings) -> None:
    set_up(store, catalog(clicks_alert={"direction": "any"}, ctr_alert={"direction": "any"}))
    reports = evaluate(store, settings, stream_looks(0.0), clock)
    assert changes_of(reports) == [] and sum(r.looks for r in reports) == 40
    assert smtp.received == [] and webhook.posts == [] and store.notifications() == []
    assert {(s.key.metric, s.state, s.looks) for s in store.alert_states()} == {
        ("clicks", "ok", 20),
        ("ctr", "ok", 20),
    }


def test_smtp_down_during_an_alert_is_retried_recorded_and_sent_once_back(
    store, clock, webhook
) -> None:
    set_up(store, WATCHED)
    server = SmtpServer("127.0.0.1", free_port())  # not listening yet: the mail server is down
    settings = alert_settings(server.port, webhook.url)
    flushes = stream_looks(-0.2)
    down = evaluate(store, settings, flushes[:4], clock)
    assert changes_of(down) == [("clicks", "alerting")]  # at look 2
    [mail] = store.notifications(kind="alert")
    assert (mail.state, mail.attempts) == ("failed", 3)  # looks 2, 3 and 4
    assert "Connection refused" in (mail.last_error or "")
    assert [n.state for n in store.notifications(kind="alert_webhook")] == ["sent"]
    assert len(webhook.posts) == 1

    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()  # the mail server is back
    try:
        back = evaluate(store, settings, flushes[4:], clock)
    finally:
        controller.stop()
    assert back[0].deliveries.sent == [mail.id] and changes_of(back) == []
    [received] = server.received
    assert received.rcpt_tos == [OWNER] and received.message["Subject"] == mail.subject
    [sent] = store.notifications(kind="alert")
    assert (sent.state, sent.attempts, sent.last_error) == ("sent", 4, mail.last_error)
    assert len(webhook.posts) == 1


def test_deliveries_that_keep_failing_stop_after_max_attempts_and_stay_recorded(
    store, clock, smtp, webhook
) -> None:
    set_up(store, WATCHED)
    settings = alert_settings(smtp.port, webhook.url, max_attempts=3)
    smtp.refuse, webhook.status = True, 500
    reports = evaluate(store, settings, stream_looks(-0.2)[:7], clock)
    assert [len(r.deliveries.failed) for r in reports] == [0, 2, 2, 2, 0, 0, 0]
    messages = store.notifications()
    assert [r.deliveries.given_up for r in reports[4:]] == [[n.id for n in messages]] * 3
    by_kind = {n.kind: n for n in messages}
    assert (by_kind["alert"].state, by_kind["alert"].attempts) == ("failed", 3)
    assert "550" in (by_kind["alert"].last_error or "")
    assert "HTTP Error 500" in (by_kind["alert_webhook"].last_error or "")
    assert smtp.received == [] and len(webhook.posts) == 3  # three attempts reached it

    smtp.refuse, webhook.status = False, 200
    evaluate(store, settings, stream_looks(-0.2)[7:9], clock)
    assert smtp.received == [] and len(webhook.posts) == 3  # given up: recorded, not resent


def test_a_restarted_evaluator_does_not_alert_again(
    framework_url, store, clock, smtp, webhook, settings
) -> None:
    set_up(store, WATCHED)
    flushes = stream_looks(-0.2)
    with MetadataStore(framework_url, clock=clock) as first:
        assert changes_of(evaluate(first, settings, flushes[:10], clock)) == [
            ("clicks", "alerting")
        ]
    with MetadataStore(framework_url, clock=clock) as restarted:
        assert changes_of(evaluate(restarted, settings, flushes[10:], clock)) == []
    assert len(smtp.received) == 1 and len(webhook.posts) == 1


def test_a_recovery_is_announced_once(store, clock, smtp, webhook, settings) -> None:
    set_up(store, WATCHED)
    # Five looks of the 20% drop, then the comparison looks like an A/A one (more users,
    # a later day): the confidence sequence includes no change again.
    later = [[replace(r, date="2026-01-09") for r in rows] for rows in stream_looks(0.0)[17:]]
    reports = evaluate(store, settings, [*stream_looks(-0.2)[:5], *later], clock)
    assert changes_of(reports) == [("clicks", "alerting"), ("clicks", "ok")]
    subjects = [r.message["Subject"] for r in smtp.received]
    assert len(subjects) == 2 and subjects[0].startswith("[udf] ALERT")
    assert subjects[1] == f"[udf] resolved {EXPERIMENT}/treatment: clicks: back within noise"
    assert [p.json()["alert"]["state"] for p in webhook.posts] == ["alerting", "ok"]


def test_evaluator_processes_looking_at_once_send_each_alert_once(
    framework_url, store, smtp, webhook, settings
) -> None:
    set_up(store, WATCHED)
    ctx = multiprocessing.get_context("spawn")
    processes = 3
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=evaluate_in_process, args=(framework_url, settings, barrier, results, 6))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert all(isinstance(o, list) for o in outcomes), outcomes
    assert sorted(state for made in outcomes for state in made) == ["alerting"]
    assert len(smtp.received) == 1 and len(webhook.posts) == 1
    assert {(n.state, n.attempts) for n in store.notifications()} == {("sent", 1)}


def test_an_evaluator_killed_while_sending_leaves_the_message_to_the_next(
    framework_url, store, clock, smtp, webhook, settings
) -> None:
    set_up(store, WATCHED)
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(
        target=evaluate_then_die, args=(framework_url, settings, Clock(clock.now), 2)
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL
    # Killed on its first message: the change and both messages were committed before.
    [change] = store.alert_changes()
    assert change.to_state == "alerting"
    assert [(n.kind, n.state, n.attempts) for n in store.notifications()] == [
        ("alert", "pending", 0),
        ("alert_webhook", "pending", 0),
    ]
    flushes = stream_looks(-0.2)
    # Its lease on the email is still live: the next evaluation sends only the webhook ...
    clock.advance(minutes=1)
    now = evaluate_alerts(flushes[2], store, settings)
    assert now.deliveries.busy == [store.notifications()[0].id] and len(webhook.posts) == 1
    assert smtp.received == []
    # ... and once the lease has expired, the email goes out, once.
    clock.advance(minutes=6)
    later = evaluate_alerts(flushes[3], store, settings)
    assert later.deliveries.sent == [store.notifications()[0].id]
    assert len(smtp.received) == 1 and len(webhook.posts) == 1
    assert {(n.state, n.attempts) for n in store.notifications()} == {("sent", 1)}


def test_udf_status_alerts_shows_states_and_deliveries(
    framework_url, store, clock, smtp, webhook, tmp_path, monkeypatch
) -> None:
    set_up(store, WATCHED)
    smtp.refuse = True
    evaluate(store, alert_settings(smtp.port, webhook.url), stream_looks(-0.2)[:3], clock)
    monkeypatch.setenv("UDF_METADATA_URL", framework_url)
    run = CliRunner().invoke(
        main, ["--home", str(tmp_path), "status", "--alerts", "--format", "json"]
    )
    assert run.exit_code == 0, run.output
    shown = json.loads(run.output)
    assert [(s["metric"], s["state"], s["looks"]) for s in shown["states"]] == [
        ("clicks", "alerting", 3),
        ("ctr", "ok", 3),
    ]
    assert [(m["via"], m["recipient"], m["state"], m["attempts"]) for m in shown["messages"]] == [
        ("email", OWNER, "failed", 2),
        ("webhook", "ops", "sent", 1),
    ]
    assert "550" in shown["messages"][0]["error"]
    table = CliRunner().invoke(main, ["--home", str(tmp_path), "status", "--alerts"]).output
    assert "1 alerting" in table and "[udf] ALERT" in table and "1 not sent" in table
    history = CliRunner().invoke(
        main, ["--home", str(tmp_path), "status", "--alerts", "--history", "--format", "json"]
    )
    assert [(c["from"], c["to"]) for c in json.loads(history.output)["changes"]] == [
        ("ok", "alerting")
    ]
