"""Delivering queued alert messages: email and webhooks, retried, never sent twice at once.

Every evaluation goes through the ``pending`` and ``failed`` alert messages in the
``notifications`` ledger (the ones just queued, and any left by an earlier evaluation that
failed or died) and tries each once: sent, or failed with the error, up to
``max_attempts`` attempts, after which it stays ``failed`` (``udf status --alerts``
shows it). A lease per message keeps two evaluators from sending the same one at once,
and its state is read again under the lease, so a message another evaluator sent is not
sent again. A sender killed between sending and recording leaves the message ``pending``;
it is sent again once its lease expires (at least once, as for the owners' digests).
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streaming.alerts.messages import EMAIL, KINDS, WEBHOOK
from udf.framework.mail import Sender, deliver, parse, smtp_sender, smtplib_sender

if TYPE_CHECKING:
    from metadata.records import NotificationInfo
    from metadata.repository import MetadataStore
    from udf.config.alerts import AlertSettings

log = logging.getLogger(__name__)

Poster = Callable[[str, bytes, Mapping[str, str]], None]
LEASE_TTL_SECONDS = 300.0


@dataclass
class Deliveries:
    """What one delivery pass did (ids in the ``notifications`` ledger)."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)  # another evaluator holds them


def urllib_poster(timeout: float = 10.0) -> Poster:
    """POST with the standard library; any status but 2xx raises (and is recorded)."""

    def post(url: str, body: bytes, headers: Mapping[str, str]) -> None:
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()

    return post


def email_sender(settings: AlertSettings) -> Sender:
    """The settings' SMTP server, or their Airflow connection when ``smtp.conn_id`` is set."""
    smtp = settings.smtp
    if smtp.conn_id:
        return smtp_sender(smtp.conn_id)
    password = smtp.password.get_secret_value() if smtp.password else None
    return smtplib_sender(
        smtp.host,
        smtp.port,
        timeout=smtp.timeout_seconds,
        starttls=smtp.starttls,
        use_ssl=smtp.ssl,
        user=smtp.user,
        password=password,
    )


def deliver_pending(
    store: MetadataStore,
    settings: AlertSettings,
    *,
    send: Sender,
    post: Poster,
    holder: str,
) -> Deliveries:
    """Try every undelivered alert message once (see the module docstring)."""
    done = Deliveries()
    waiting = sorted(
        (
            n
            for kind in KINDS
            for state in ("pending", "failed")
            for n in store.notifications(state=state, kind=kind)
        ),
        key=lambda n: n.id,
    )
    for message in waiting:
        if message.attempts >= settings.max_attempts:
            done.given_up.append(message.id)
            continue
        key = f"alert-message:{message.id}"
        if not store.acquire_lease(key, holder, LEASE_TTL_SECONDS):
            done.busy.append(message.id)
            continue
        try:
            current = store.notification(message.id)  # read again under the lease
            if current is None or current.state == "sent":
                continue
            if current.attempts >= settings.max_attempts:
                done.given_up.append(message.id)
                continue
            ok = _deliver_one(store, settings, current, send, post)
            (done.sent if ok else done.failed).append(message.id)
        finally:
            store.release(key, holder)
    if done.given_up:
        log.error(
            "alert messages %s failed %d times; given up (udf status --alerts)",
            done.given_up,
            settings.max_attempts,
        )
    return done


def _deliver_one(
    store: MetadataStore,
    settings: AlertSettings,
    message: NotificationInfo,
    send: Sender,
    post: Poster,
) -> bool:
    if message.kind == EMAIL:
        return deliver(store, send, message.id, parse(message.body), settings.email_from)
    assert message.kind == WEBHOOK
    url = settings.webhooks.get(message.recipient)
    try:
        if url is None:
            raise LookupError(f"no webhook {message.recipient!r} in the settings' alerts.webhooks")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "udf-alerts",
            # The same key on every attempt: a receiver can drop a repeat.
            "Idempotency-Key": f"udf-alert-{message.alert_event_id}-{message.recipient}",
        }
        post(url, message.body.encode(), headers)
    except Exception as exc:  # any delivery error is recorded and retried later
        log.warning("alert webhook %d to %s not delivered: %s", message.id, message.recipient, exc)
        store.mark_notification(message.id, "failed", f"{type(exc).__name__}: {exc}")
        return False
    store.mark_notification(message.id, "sent")
    return True
