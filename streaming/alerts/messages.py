"""What an alert says: an email to each recipient and a JSON POST to each webhook.

The email is rendered from ``templates/alert.{txt,html}.j2`` (text and HTML alternatives,
HTML autoescaped) with the framework's mail helpers; the webhook body is Slack-compatible
(``text``, which Slack, Mattermost and most chat tools display) plus an ``alert`` object
with every field, for programs. Both are stored in the ``notifications`` ledger with the
change they announce, so a retry sends exactly the same message.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metadata.records import AlertChange, Outgoing
from streaming.alerts.health import health_subject, health_summary, is_health
from streaming.alerts.rules import Watch
from udf.framework.mail import compose

EMAIL = "alert"  # notification kinds
WEBHOOK = "alert_webhook"
KINDS = (EMAIL, WEBHOOK)
TEMPLATES = Path(__file__).parent / "templates"
METHODS = {"msprt": "mixture SPRT", "confidence_sequence": "asymptotic confidence sequence"}
_MOVES = {"decrease": "down", "increase": "up", "any": "changed", "": "changed"}


def outgoing(change: AlertChange, watch: Watch, email_from: str | None) -> list[Outgoing]:
    """The messages announcing ``change``: one email per recipient, one POST per webhook."""
    subject = subject_of(change)
    context = _context(change, watch, subject)
    messages = [
        Outgoing(
            recipient,
            EMAIL,
            subject,
            compose(
                TEMPLATES,
                "alert",
                {**context, "recipient": recipient},
                subject=subject,
                recipient=recipient,
                email_from=email_from,
                now=change.at,
                kind=EMAIL,
            ).as_string(),
        )
        for recipient in watch.emails
    ]
    body = json.dumps(payload(change, watch), sort_keys=True)
    messages += [Outgoing(name, WEBHOOK, subject, body) for name in watch.webhooks]
    return messages


def subject_of(change: AlertChange) -> str:
    k, found = change.key, change.found
    if is_health(k):
        return health_subject(k, change.to_state == "alerting", found.status)
    where = f"{k.experiment}/{k.group}: {k.metric}{_segment(change, ' for ')}"
    if change.to_state == "alerting":
        size = f" {abs(found.lift_rel):.1%}" if found.lift_rel is not None else ""
        return f"[udf] ALERT {where} {_MOVES[found.moved]}{size}"
    return f"[udf] resolved {where}: back within noise"


def summary(change: AlertChange, watch: Watch) -> str:
    """One sentence saying what happened."""
    k, found = change.key, change.found
    if is_health(k):
        return health_summary(k, change.to_state == "alerting", found)
    method = METHODS.get(found.method, found.method)
    if change.to_state == "alerting":
        size = f" by {abs(found.lift_rel):.1%}" if found.lift_rel is not None else ""
        return (
            f"{k.metric} is {_MOVES[found.moved]}{size} in {k.group} against control "
            f"(experiment {k.experiment}{_segment(change, ', ')}): the {method} rejects no "
            f"change at alpha {found.alpha:g}, a test valid however often it is looked at."
        )
    return (
        f"{k.metric} in {k.group} (experiment {k.experiment}{_segment(change, ', ')}) is no "
        f"longer significantly {_MOVES[watch.direction]}: the {method} interval includes "
        f"no change again."
    )


def payload(change: AlertChange, watch: Watch) -> dict[str, Any]:
    """The webhook's JSON: ``text`` for chat tools, ``alert`` with every field."""
    k, found = change.key, change.found
    return {
        "text": f"{subject_of(change)}\n{summary(change, watch)}",
        "alert": {
            "id": change.id,
            "state": change.to_state,
            "previous_state": change.from_state,
            "at": change.at.astimezone(UTC).isoformat(),
            "experiment": k.experiment,
            "group": k.group,
            "metric": k.metric,
            "period_start": k.period_start,
            "segment": k.segment,
            "segment_value": k.segment_value,
            "direction": watch.direction,
            "moved": found.moved,
            "date": found.day.isoformat(),
            "units": found.units,
            "method": found.method,
            "alpha": found.alpha,
            "p_value": found.p_value,
            "lift_abs": found.lift_abs,
            "lift_rel": found.lift_rel,
            "ci_low": found.ci_low,
            "ci_high": found.ci_high,
        },
    }


def _context(change: AlertChange, watch: Watch, subject: str) -> dict[str, Any]:
    k, found = change.key, change.found
    start = datetime.fromtimestamp(k.period_start / 1000, UTC)
    return {
        "subject": subject,
        "summary": summary(change, watch),
        "firing": change.to_state == "alerting",
        "experiment": k.experiment,
        "group": k.group,
        "metric": k.metric,
        "segment": f"{k.segment} = {k.segment_value or '(none)'}" if k.segment else "all users",
        "period_start": start.strftime("%Y-%m-%d %H:%M UTC"),
        "day": found.day.isoformat(),
        "units": f"{found.units:,}",
        "direction": watch.direction,
        "method": METHODS.get(found.method, found.method),
        "alpha": f"{found.alpha:g}",
        "p_value": _num(found.p_value, ".3g"),
        "lift_rel": _num(found.lift_rel, "+.2%"),
        "lift_abs": _num(found.lift_abs, "+.4g"),
        "interval": f"[{_num(found.ci_low, '.4g')}, {_num(found.ci_high, '.4g')}]",
        "at": change.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "event_id": change.id,
        "state": change.to_state,
        "previous_state": change.from_state,
    }


def _segment(change: AlertChange, sep: str) -> str:
    k = change.key
    return f"{sep}{k.segment} = {k.segment_value}" if k.segment else ""


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
