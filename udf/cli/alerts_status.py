"""``udf status --alerts``: every watched comparison's alert state, and the alert messages.

One row per (experiment, treatment group, metric, period, segment value) that the alerts
have looked at — ``ok`` or ``alerting``, since when, and the latest look's lift, interval
and always-valid p-value — then every alert message with its delivery state (pending,
sent, failed), attempts and last error. ``--history`` lists the changes of state instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from udf.cli.output import emit
from udf.home import Home

if TYPE_CHECKING:
    from metadata.records import AlertKey, Findings

# Spelled out (a test keeps them equal to streaming.alerts.messages.KINDS) so that the CLI
# does not import the alerting code.
KINDS = {"alert": "email", "alert_webhook": "webhook"}


def show_alerts(home: Home, experiment: str | None, history: bool, fmt: str) -> None:
    from metadata.repository import MetadataStore

    with MetadataStore.for_home(home.ensure()) as store:
        states = store.alert_states(experiment=experiment)
        changes = store.alert_changes(experiment=experiment) if history else []
        messages = [n for kind in KINDS for n in store.notifications(kind=kind)]
    messages.sort(key=lambda n: n.id)
    state_rows = [
        {
            **_key(s.key),
            "state": s.state,
            "since": _time(s.changed_at),
            "changes": s.changes,
            "looks": s.looks,
            **_found(s.found),
            "looked": _time(s.updated_at),
        }
        for s in states
    ]
    change_rows = [
        {
            "id": c.id,
            **_key(c.key),
            "from": c.from_state,
            "to": c.to_state,
            "at": _time(c.at),
            **_found(c.found),
        }
        for c in changes
    ]
    message_rows = [
        {
            "id": n.id,
            "alert": n.alert_event_id,
            "via": KINDS[n.kind],
            "recipient": n.recipient,
            "subject": n.subject,
            "state": n.state,
            "attempts": n.attempts,
            "sent": _time(n.sent_at),
            "error": n.last_error or "",
        }
        for n in messages
    ]
    if fmt == "json":
        out: dict[str, Any] = {"states": state_rows, "messages": message_rows}
        if history:
            out["changes"] = change_rows
        click.echo(json.dumps(out, indent=2, default=str))
        return
    if history:
        emit(
            change_rows,
            fmt,
            title=f"{len(change_rows)} change(s) of alert state",
            columns=[
                "id",
                "experiment",
                "group",
                "metric",
                "period",
                "segment",
                "from",
                "to",
                "at",
                "date",
                "users",
                "lift",
                "interval",
                "p",
            ],
        )
    else:
        alerting = sum(1 for s in states if s.state == "alerting")
        emit(
            state_rows,
            fmt,
            title=f"{len(states)} watched comparison(s): {alerting} alerting",
            columns=[
                "experiment",
                "group",
                "metric",
                "period",
                "segment",
                "state",
                "since",
                "users",
                "lift",
                "interval",
                "p",
            ],
        )
    failed = sum(1 for n in messages if n.state != "sent")
    emit(
        message_rows,
        fmt,
        title=f"{len(messages)} alert message(s): {failed} not sent",
        columns=[
            "id",
            "alert",
            "via",
            "recipient",
            "subject",
            "state",
            "attempts",
            "sent",
            "error",
        ],
    )


def _key(key: AlertKey) -> dict[str, Any]:
    start = datetime.fromtimestamp(key.period_start / 1000, UTC)
    return {
        "experiment": key.experiment,
        "group": key.group,
        "metric": key.metric,
        "period": start.strftime("%Y-%m-%dT%H:%MZ"),
        "segment": f"{key.segment}={key.segment_value}" if key.segment else "",
    }


def _found(found: Findings) -> dict[str, Any]:
    def num(value: float | None, spec: str) -> str:
        return "" if value is None else format(value, spec)

    return {
        "date": found.day.isoformat(),
        "users": found.units,
        "lift": num(found.lift_rel, "+.2%"),
        "interval": f"[{num(found.ci_low, '.4g')}, {num(found.ci_high, '.4g')}]",
        "p": found.p_value,
        "method": found.method,
        "alpha": found.alpha,
        "moved": found.moved,
        "status": found.status,
    }


def _time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")
