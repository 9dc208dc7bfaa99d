"""What an alert says: subjects, the email's two parts, the webhook's JSON and its POST."""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from metadata.records import AlertChange, AlertKey, Findings
from streaming.alerts.delivery import urllib_poster
from streaming.alerts.messages import EMAIL, WEBHOOK, outgoing, payload, subject_of
from streaming.alerts.rules import Watch
from tests.support.webhook_server import WebhookServer
from udf.framework.mail import parse

AT = datetime(2026, 1, 6, 9, 30, tzinfo=UTC)
FOUND = Findings(
    day=date(2026, 1, 6),
    units=1200,
    method="msprt",
    alpha=0.05,
    moved="decrease",
    p_value=0.00123,
    lift_abs=-0.61,
    lift_rel=-0.1987,
    ci_low=-0.9,
    ci_high=-0.3,
)
KEY = AlertKey("exp_001", "treatment", "revenue", 1_767_657_600_000)
WATCH = Watch("decrease", 0.05, "msprt", ("ana@example.com", "bob@example.com"), ("ops",), True)


def change(to: str = "alerting", key: AlertKey = KEY) -> AlertChange:
    return AlertChange(7, key, "ok" if to == "alerting" else "alerting", to, AT, FOUND)


def test_subjects_say_what_moved_and_where() -> None:
    assert subject_of(change()) == "[udf] ALERT exp_001/treatment: revenue down 19.9%"
    segmented = AlertKey("exp_001", "treatment", "revenue", 0, "country", "DE")
    assert subject_of(change(key=segmented)) == (
        "[udf] ALERT exp_001/treatment: revenue for country = DE down 19.9%"
    )
    assert (
        subject_of(change("ok")) == "[udf] resolved exp_001/treatment: revenue: back within noise"
    )


def test_one_email_per_recipient_and_one_post_per_webhook() -> None:
    key = AlertKey("exp_001", "treatment", "revenue", 1_767_657_600_000, "browser", "<b>x</b>&")
    messages = outgoing(change(key=key), WATCH, "alerts@example.com")
    assert [(m.kind, m.recipient) for m in messages] == [
        (EMAIL, "ana@example.com"),
        (EMAIL, "bob@example.com"),
        (WEBHOOK, "ops"),
    ]
    email = parse(messages[0].body)
    assert email["To"] == "ana@example.com" and email["From"] == "alerts@example.com"
    assert email["Subject"] == messages[0].subject and email["X-UDF-Kind"] == "alert"
    text = email.get_body(preferencelist=("plain",)).get_content()
    html = email.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        for expected in (
            "exp_001",
            "treatment",
            "revenue",
            "-19.87%",
            "0.00123",
            "2026-01-06",
            "1,200 users",
            "mixture SPRT",
            "[-0.9, -0.3]",
            "udf status --alerts",
        ):
            assert expected in body, expected
    assert "browser = <b>x</b>&" in text
    assert "browser = &lt;b&gt;x&lt;/b&gt;&amp;" in html and "<b>x</b>" not in html


def test_the_webhook_payload_is_slack_text_plus_every_field() -> None:
    body = payload(change(), WATCH)
    assert body["text"].startswith("[udf] ALERT exp_001/treatment: revenue down 19.9%\n")
    assert "revenue is down by 19.9% in treatment" in body["text"]
    assert body["alert"] == {
        "id": 7,
        "state": "alerting",
        "previous_state": "ok",
        "at": "2026-01-06T09:30:00+00:00",
        "experiment": "exp_001",
        "group": "treatment",
        "metric": "revenue",
        "period_start": 1_767_657_600_000,
        "segment": "",
        "segment_value": "",
        "direction": "decrease",
        "moved": "decrease",
        "date": "2026-01-06",
        "units": 1200,
        "method": "msprt",
        "alpha": 0.05,
        "p_value": 0.00123,
        "lift_abs": -0.61,
        "lift_rel": -0.1987,
        "ci_low": -0.9,
        "ci_high": -0.3,
    }
    resolved = payload(change("ok"), WATCH)
    assert "no longer significantly down" in resolved["text"]
    assert resolved["alert"]["state"] == "ok" and resolved["alert"]["previous_state"] == "alerting"


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def test_the_poster_sends_json_and_fails_on_an_error_status(hook: WebhookServer) -> None:
    post = urllib_poster(timeout=5)
    body = json.dumps(payload(change(), WATCH)).encode()
    post(hook.url, body, {"Content-Type": "application/json", "Idempotency-Key": "k1"})
    [received] = hook.posts
    assert received.path == "/hooks/ops" and received.body == body
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["Idempotency-Key"] == "k1"
    hook.status = 500
    with pytest.raises(urllib.error.HTTPError, match="500"):
        post(hook.url, body, {"Content-Type": "application/json"})


def test_the_cli_spells_out_the_same_message_kinds() -> None:
    from udf.cli import alerts_status

    assert tuple(alerts_status.KINDS) == (EMAIL, WEBHOOK)
