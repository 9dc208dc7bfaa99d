"""Owner digests, received and parsed by a real SMTP server (aiosmtpd) on 127.0.0.1.

One digest per owner per run, to the right recipient, naming every late metric-day with its
state and reason in both the text and the HTML part; a failed delivery is recorded, retried
on the next run and delivered, and given up (still recorded) after the attempts allowed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.framework.support import DS, add_metrics
from udf.framework.notify import (
    find_late,
    notify_for_spec,
    notify_owners,
    smtp_sender,
    smtplib_sender,
)
from udf.framework.spec import PipelineSpec

ANA, BOB, CAROL = "ana@example.com", "bob@example.com", "carol@example.com"
NOW = datetime(2026, 1, 8, 12, tzinfo=UTC)  # DS ended 2.5 days ago
WAITING = (
    "waiting for sources through 2026-01-06T00:00Z: events closed only through 2026-01-05T18:00Z"
)
FAILED = "RuntimeError: column <x> & y missing"
SKIPPED = "outside the 3-day backfill window (last waiting_on_source: events late)"


@pytest.fixture
def late(store, clock):
    """Ana owns clicks (waiting) and ctr (failed); Bob ctr and latency (skipped); Carol's are fine."""
    clock.now = NOW
    add_metrics(store, "clicks", owners=[ANA], sla_hours=30)
    add_metrics(store, "ctr", owners=[ANA, BOB], sla_hours=30)
    add_metrics(store, "latency", owners=[BOB])
    add_metrics(store, "searches", "saves_slow", owners=[CAROL], sla_hours=100)
    add_metrics(store, "orphan")  # no owner: nobody to tell
    store.set_run_state("clicks", DS, "waiting_on_source", WAITING)
    store.set_run_state("ctr", DS, "failed", FAILED)
    store.set_run_state("latency", DS - timedelta(days=5), "skipped", SKIPPED)
    store.set_run_state("searches", DS, "done")
    store.set_run_state("saves_slow", DS, "waiting_on_source", "events late")  # SLA not over yet
    store.set_run_state("orphan", DS, "failed", "boom")
    return store


def parts(message):
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def test_one_digest_per_owner_with_every_metric_and_reason(late, smtp, clock) -> None:
    report = notify_owners(
        late,
        smtplib_sender(smtp.host, smtp.port),
        now=clock.now,
        email_from="udf@example.com",
        run_label="scheduled__2026-01-08",
    )
    assert report.digests == 2 and len(report.sent) == 2 and report.failed == []
    by_rcpt = {tuple(r.rcpt_tos): r for r in smtp.received}
    assert sorted(by_rcpt) == [(ANA,), (BOB,)]  # exactly one each; Carol has nothing late

    ana = by_rcpt[(ANA,)]
    assert ana.mail_from == "udf@example.com"
    assert ana.message["To"] == ANA and ana.message["From"] == "udf@example.com"
    assert ana.message["Subject"] == "[udf] 2 delayed metric-day(s): clicks, ctr"
    text, html = parts(ana.message)
    for body in (text, html):
        assert "clicks" in body and "ctr" in body and "2026-01-05" in body
        assert "latency" not in body and "searches" not in body and "orphan" not in body
        assert "scheduled__2026-01-08" in body
    assert WAITING in text and FAILED in text
    assert "events closed only through 2026-01-05T18:00Z" in html
    assert "column &lt;x&gt; &amp; y missing" in html and "<x>" not in html  # autoescaped

    bob = by_rcpt[(BOB,)]
    assert bob.message["Subject"] == "[udf] 1 delayed and 1 skipped metric-day(s): ctr, latency"
    text, html = parts(bob.message)
    for body in (text, html):
        assert "ctr" in body and "latency" in body and "clicks" not in body
        assert "Skipped (outside the backfill window)" in body
    assert SKIPPED in text and SKIPPED in html and "2025-12-31" in text

    sent = late.notifications(state="sent")
    assert {(n.recipient, n.attempts) for n in sent} == {(ANA, 1), (BOB, 1)}
    runs = {r.metric: r.id for r in late.runs()}
    assert {n.recipient: set(n.run_ids) for n in sent} == {
        ANA: {runs["clicks"], runs["ctr"]},
        BOB: {runs["ctr"], runs["latency"]},
    }


def test_owners_are_told_once_per_state(late, smtp, clock) -> None:
    send = smtplib_sender(smtp.host, smtp.port)
    notify_owners(late, send, now=clock.now)
    clock.advance(hours=4)
    again = notify_owners(late, send, now=clock.now)
    assert again.digests == 0 and len(smtp.received) == 2  # nothing new: no mail
    # clicks now falls out of the window: skipped is news, ctr (still failed) is not.
    late.set_run_state("clicks", DS, "skipped", "outside the 3-day backfill window (last ...)")
    clock.advance(hours=1)
    third = notify_owners(late, send, now=clock.now)
    assert third.digests == 1
    last = smtp.received[-1]
    assert last.rcpt_tos == [ANA]
    assert last.message["Subject"] == "[udf] 1 skipped metric-day(s): clicks"


def test_a_failed_delivery_is_recorded_retried_and_sent_next_run(late, smtp, clock) -> None:
    from tests.integration.framework.conftest import free_port

    down = smtplib_sender("127.0.0.1", free_port(), timeout=5)  # nothing listens there
    first = notify_owners(late, down, now=clock.now)
    assert first.sent == [] and len(first.failed) == 2
    failed = late.notifications(state="failed")
    assert {n.recipient for n in failed} == {ANA, BOB}
    assert all(n.attempts == 1 and "Connection refused" in (n.last_error or "") for n in failed)

    clock.advance(hours=4)
    second = notify_owners(late, smtplib_sender(smtp.host, smtp.port), now=clock.now)
    assert sorted(second.resent) == sorted(n.id for n in failed) and second.digests == 0
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [ANA, BOB]  # the same digests
    resent = {n.recipient: n for n in late.notifications()}
    assert all(n.state == "sent" and n.attempts == 2 for n in resent.values())
    text, _ = parts(next(r for r in smtp.received if r.rcpt_tos == [ANA]).message)
    assert "clicks" in text and FAILED in text


def test_a_refusing_server_is_a_failure_and_attempts_are_bounded(late, smtp, clock) -> None:
    smtp.refuse = True
    send = smtplib_sender(smtp.host, smtp.port)
    for _ in range(2):
        report = notify_owners(late, send, now=clock.now, max_attempts=2)
        assert len(report.failed) == 2 and report.sent == []
        clock.advance(hours=1)
    assert all("550" in (n.last_error or "") for n in late.notifications())
    smtp.refuse = False
    given_up = notify_owners(late, send, now=clock.now, max_attempts=2)
    assert len(given_up.given_up) == 2 and given_up.resent == [] and smtp.received == []
    assert {n.state for n in late.notifications()} == {"failed"}  # recorded, never lost


def test_find_late_honours_each_metrics_sla(late, clock) -> None:
    items = {(i.run.metric, i.kind) for i in find_late(late, now=clock.now)}
    assert items == {
        ("clicks", "delayed"),
        ("ctr", "delayed"),
        ("latency", "skipped"),
        ("orphan", "delayed"),
    }
    early = find_late(late, now=datetime(2026, 1, 7, 5, tzinfo=UTC))  # due 06:00 for 30 h
    assert {(i.run.metric, i.kind) for i in early} == {("latency", "skipped")}


def test_through_airflows_smtp_connection(late, smtp, clock, monkeypatch) -> None:
    conn = {
        "conn_type": "smtp",
        "host": smtp.host,
        "port": smtp.port,
        "extra": {
            "disable_ssl": True,
            "disable_tls": True,
            "from_email": "airflow@example.com",
            "retry_limit": 0,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_UDF_SMTP_TEST", json.dumps(conn))
    spec = PipelineSpec.model_validate(
        {"metric_type": "aggregated", "dag_creation_args": {"smtp_conn_id": "udf_smtp_test"}}
    )
    report = notify_for_spec(None, spec, store=late, now=clock.now)  # type: ignore[arg-type]
    assert report["digests"] == 2 and len(report["sent"]) == 2
    assert {r.message["From"] for r in smtp.received} == {"airflow@example.com"}
    assert {r.rcpt_tos[0] for r in smtp.received} == {ANA, BOB}
    assert smtp_sender("udf_smtp_test") is not None
