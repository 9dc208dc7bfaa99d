"""Email shared by the platform's messages (owner digests, real-time alerts).

Messages are rendered from Jinja2 templates (a text and an HTML alternative, HTML
autoescaped), recorded in the metadata store's ``notifications`` ledger as ``pending``
before they are sent, then marked ``sent`` or ``failed`` with the error (:func:`deliver`),
so a failed delivery is retried from its stored copy, never lost. Senders go through
Airflow's SMTP connection (:func:`smtp_sender`) or the standard library
(:func:`smtplib_sender`, for processes without Airflow such as the streaming job).
"""

from __future__ import annotations

import email
import email.policy
import logging
import smtplib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udf.config.alerts import DEFAULT_FROM

if TYPE_CHECKING:
    from jinja2 import Environment

    from metadata.repository import MetadataStore

log = logging.getLogger(__name__)

Sender = Callable[[EmailMessage], None]
# Headers folded only past RFC 5322's hard limit: the default (78) folds a subject with
# "<", ">" or "&" before its first word, and the stored copy then parses back with a space.
POLICY = email.policy.default.clone(max_line_length=998)


def compose(
    templates: Path,
    name: str,
    context: Mapping[str, Any],
    *,
    subject: str,
    recipient: str,
    email_from: str | None,
    now: datetime,
    kind: str,
) -> EmailMessage:
    """The multipart email of ``<name>.txt.j2`` and ``<name>.html.j2`` in ``templates``.

    ``From`` is left to the sender when not given; ``X-UDF-Kind`` says what the message is.
    """
    env = environment(templates)
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = subject
    if email_from:
        msg["From"] = email_from
    msg["To"] = recipient
    msg["Date"] = format_datetime(now.astimezone(UTC))
    msg["Message-ID"] = make_msgid(domain="udf.local")
    msg["X-UDF-Kind"] = kind
    msg.set_content(env.get_template(f"{name}.txt.j2").render(context))
    msg.add_alternative(env.get_template(f"{name}.html.j2").render(context), subtype="html")
    return msg


def parse(stored: str) -> EmailMessage:
    """A message back from its stored copy (``message.as_string()`` in the ledger)."""
    return email.message_from_string(stored, policy=POLICY)  # type: ignore[return-value]


def deliver(
    store: MetadataStore,
    send: Sender,
    id: int,
    message: EmailMessage,
    email_from: str | None = None,
) -> bool:
    """Send notification ``id`` and record the outcome: ``sent``, or ``failed`` with the error."""
    if message["From"] is None and email_from:
        message["From"] = email_from
    try:
        send(message)
    except Exception as exc:  # any delivery error is recorded and retried later
        log.warning("message %d to %s not delivered: %s", id, message["To"], exc)
        store.mark_notification(id, "failed", f"{type(exc).__name__}: {exc}")
        return False
    store.mark_notification(id, "sent")
    return True


def smtp_sender(conn_id: str = "smtp_default") -> Sender:
    """Send through Airflow's SMTP connection ``conn_id`` (host, TLS/SSL, login, retries).

    The hook's own ``send_email_smtp`` builds an HTML-only message, so the hook is used to
    open and authenticate the client from the connection and the prepared multipart
    message is sent through that client. The connection's ``from_email`` fills a missing
    ``From``.
    """

    def send(message: EmailMessage) -> None:
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        with SmtpHook(smtp_conn_id=conn_id) as hook:
            if message["From"] is None:
                message["From"] = hook.from_email or DEFAULT_FROM
            client: Any = hook._smtp_client
            _check_refused(client.send_message(message))

    return send


def smtplib_sender(
    host: str = "127.0.0.1",
    port: int = 25,
    *,
    timeout: float = 30.0,
    starttls: bool = False,
    use_ssl: bool = False,
    user: str | None = None,
    password: str | None = None,
) -> Sender:
    """Send with the standard library alone (no Airflow): for ``udf`` commands and tests."""

    def send(message: EmailMessage) -> None:
        if message["From"] is None:
            message["From"] = DEFAULT_FROM
        client_class = smtplib.SMTP_SSL if use_ssl else smtplib.SMTP
        with client_class(host, port, timeout=timeout) as client:
            if starttls:
                client.starttls()
            if user:
                client.login(user, password or "")
            _check_refused(client.send_message(message))

    return send


def _check_refused(refused: Any) -> None:
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


@cache
def environment(templates: Path) -> Environment:
    """The Jinja2 environment of one template directory (HTML autoescaped, strict)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(templates),
        autoescape=lambda name: (name or "").endswith(".html.j2"),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
