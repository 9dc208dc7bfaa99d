"""The stream supervisor's email about jobs it cannot recover, to a real SMTP server."""

from __future__ import annotations

from pathlib import Path

import yaml

from udf.home import Home

FAILURES = [
    {"mode": "run", "job": "aggregation", "outcome": "unrecoverable", "attempts": 3,
     "error": "restarted 3 times, still failing"},
    {"mode": "replay", "outcome": "unrecoverable", "attempts": 1},
]  # fmt: skip


def _home(root: Path, smtp_port: int, enabled: bool) -> Home:
    home = Home.resolve(root).ensure()
    (root / "settings.yaml").write_text(yaml.safe_dump({"alerts": {
        "enabled": enabled, "email_from": "udf@example.com", "recipients": ["ops@example.com"],
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout_seconds": 5.0},
    }}))  # fmt: skip
    return home


def test_the_owners_hear_once_of_each_job_that_cannot_be_recovered(tmp_path, smtp) -> None:
    from streaming import supervisor

    sent = supervisor.alert_owners(_home(tmp_path, smtp.port, enabled=True), FAILURES)

    assert sent == ["ops@example.com"]
    (mail,) = smtp.received
    assert mail.rcpt_tos == ["ops@example.com"]
    assert mail.message["Subject"] == (
        "[udf] streaming job cannot be recovered: run/aggregation, replay"
    )
    body = mail.message.get_content()
    assert "- run/aggregation: restarted 3 times, still failing (after 3 recoveries)" in body
    assert "- replay: unrecoverable (after 1 recoveries)" in body


def test_it_is_an_operational_message_sent_with_metric_alerts_off(tmp_path, smtp) -> None:
    """``alerts.enabled: false`` turns off the metric alerts, not news of a dead pipeline."""
    from streaming import supervisor

    sent = supervisor.alert_owners(_home(tmp_path, smtp.port, enabled=False), FAILURES)

    assert sent == ["ops@example.com"]
    assert len(smtp.received) == 1
