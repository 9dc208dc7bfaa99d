"""Tell metric owners when their metric-days are late: one digest email per owner per run.

A metric-day is *delayed* when it is not done by the end of its slice plus the metric's
``sla_hours``, and *skipped* when it fell out of the backfill window. After each run the
owners of such metric-days that were not yet told about them (in that state) get one
email listing all of them, with states and reasons, rendered from Jinja2 templates (text
and HTML alternatives, HTML autoescaped).

Delivery is recorded before it is attempted: each digest is stored ``pending`` (the exact
message), sent, then marked ``sent`` or ``failed`` with the error. Failed digests, and
pending ones whose sender died, are sent again on the next run, up to a bounded number of
attempts, after which they stay ``failed`` in the store (visible, never silently lost).
A lease per recipient keeps two concurrent runs from sending the same digest twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metadata.records import MetricInfo, NotificationInfo, RunInfo
from udf.framework.leases import default_holder
from udf.framework.mail import Sender, compose, deliver, parse, smtp_sender
from udf.framework.mail import smtplib_sender as smtplib_sender  # re-exported
from udf.framework.readiness import slice_end

if TYPE_CHECKING:
    from metadata.repository import MetadataStore
    from udf.framework.spec import PipelineSpec
    from udf.home import Home

log = logging.getLogger(__name__)

KIND = "digest"
MAX_ITEMS = 100  # per digest; the rest is counted (a digest must stay readable and small)
LATE_STATES = ("waiting_on_source", "queued", "backfill_queued", "in_progress", "failed")
LOOKBACK_DAYS = 30
LEASE_TTL_SECONDS = 300.0
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class LateItem:
    """One metric-day an owner should hear about."""

    run: RunInfo
    metric: MetricInfo
    kind: str  # "delayed" or "skipped"
    due: datetime

    def view(self, now: datetime) -> dict[str, Any]:
        late = max(now - self.due, timedelta(0))
        hours = late.total_seconds() / 3600
        return {
            "metric": self.run.metric,
            "metric_type": self.run.metric_type,
            "ds": self.run.ds.isoformat(),
            "scope": self.run.scope,
            "state": self.run.state,
            "reason": self.run.reason or "no reason recorded",
            "kind": self.kind,
            "due": self.due.strftime("%Y-%m-%d %H:%M UTC"),
            "late_by": f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days",
        }


@dataclass(frozen=True)
class Digest:
    """Everything one owner is told in one run."""

    recipient: str
    items: tuple[LateItem, ...]
    run_label: str | None = None

    @property
    def run_ids(self) -> list[int]:
        return sorted({i.run.id for i in self.items})

    @property
    def subject(self) -> str:
        delayed = sum(1 for i in self.items if i.kind == "delayed")
        skipped = len(self.items) - delayed
        parts = [f"{n} {what}" for n, what in ((delayed, "delayed"), (skipped, "skipped")) if n]
        names = sorted({i.run.metric for i in self.items})
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return f"[udf] {' and '.join(parts)} metric-day(s): {shown}"

    def message(self, email_from: str | None, now: datetime) -> EmailMessage:
        """The multipart (text + HTML) email; ``From`` is left to the sender when not given."""
        return compose(
            TEMPLATES, "digest", self._context(now), subject=self.subject,
            recipient=self.recipient, email_from=email_from, now=now, kind=KIND,
        )  # fmt: skip

    def _context(self, now: datetime) -> dict[str, Any]:
        ordered = sorted(self.items, key=lambda i: (i.run.ds, i.run.metric, i.run.scope))
        shown = ordered[:MAX_ITEMS]
        sections = [
            {"title": title, "entries": [i.view(now) for i in shown if i.kind == kind]}
            for kind, title in (
                ("skipped", "Skipped (outside the backfill window)"),
                ("delayed", "Delayed past the SLA"),
            )
        ]
        delayed = sum(1 for i in self.items if i.kind == "delayed")
        return {
            "recipient": self.recipient,
            "subject": self.subject,
            "run_label": self.run_label,
            "total": len(self.items),
            "delayed_count": delayed,
            "skipped_count": len(self.items) - delayed,
            "sections": [s for s in sections if s["entries"]],
            "hidden": len(ordered) - len(shown),
        }


@dataclass
class NotifyReport:
    """What one notification pass did (ids of notifications in the store)."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    given_up: list[int] = field(default_factory=list)
    digests: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "digests": self.digests,
            "sent": self.sent,
            "failed": self.failed,
            "resent": self.resent,
            "given_up": self.given_up,
        }


def find_late(
    store: MetadataStore,
    *,
    now: datetime,
    metric_type: str | None = None,
    lookback_days: int = LOOKBACK_DAYS,
) -> list[LateItem]:
    """Metric-days past their SLA and not done, or skipped, within ``lookback_days`` of ``now``."""
    catalog = {m.name: m for m in store.metrics() if metric_type in (None, m.metric_type)}
    since = (now - timedelta(days=lookback_days)).date()
    found = []
    for run in store.runs(states=(*LATE_STATES, "skipped"), ds_from=since):
        metric = catalog.get(run.metric)
        if metric is None or run.metric_type != metric.metric_type:
            continue
        due = slice_end(run.metric_type, run.ds) + timedelta(hours=metric.sla_hours)
        if run.state == "skipped":
            found.append(LateItem(run, metric, "skipped", due))
        elif now >= due:
            found.append(LateItem(run, metric, "delayed", due))
    return found


def build_digests(
    items: Iterable[LateItem],
    notified: Callable[[str, LateItem], bool] = lambda recipient, item: False,
    run_label: str | None = None,
    recipient: str | None = None,
) -> list[Digest]:
    """One digest per owner (or for ``recipient`` only) of every item not yet ``notified``."""
    by_owner: dict[str, list[LateItem]] = {}
    for item in items:
        for owner in item.metric.owners:
            if recipient not in (None, owner):
                continue
            if not notified(owner, item):
                by_owner.setdefault(owner, []).append(item)
    return [Digest(owner, tuple(found), run_label) for owner, found in sorted(by_owner.items())]


def notify_owners(
    store: MetadataStore,
    send: Sender,
    *,
    now: datetime | None = None,
    metric_type: str | None = None,
    email_from: str | None = None,
    max_attempts: int = 5,
    run_label: str | None = None,
    holder: str | None = None,
    lookback_days: int = LOOKBACK_DAYS,
) -> NotifyReport:
    """Retry undelivered digests, then send each owner one digest of what is newly late."""
    now = now or datetime.now(UTC)
    holder = holder or default_holder()
    report = NotifyReport()
    late = find_late(store, now=now, metric_type=metric_type, lookback_days=lookback_days)
    owners_late = {o for item in late for o in item.metric.owners}
    retry = [
        n for state in ("failed", "pending") for n in store.notifications(state=state, kind=KIND)
    ]
    for recipient in sorted(owners_late | {n.recipient for n in retry}):
        key = f"notify:{recipient}"
        if not store.acquire_lease(key, holder, LEASE_TTL_SECONDS):
            log.info("another run is notifying %s; leaving it to that run", recipient)
            continue
        try:
            _notify_one(
                store, send, recipient, late, now, email_from, max_attempts, run_label, report
            )
        finally:
            store.release(key, holder)
    return report


def _notify_one(
    store: MetadataStore,
    send: Sender,
    recipient: str,
    late: list[LateItem],
    now: datetime,
    email_from: str | None,
    max_attempts: int,
    run_label: str | None,
    report: NotifyReport,
) -> None:
    # Read under the recipient's lease: what is pending now was left by a dead sender.
    history = store.notifications(recipient=recipient, kind=KIND)
    for old in history:
        if old.state == "sent":
            continue
        if old.attempts >= max_attempts:
            if old.id not in report.given_up:
                log.error(
                    "digest %d to %s failed %d times (last: %s); giving up",
                    old.id,
                    recipient,
                    old.attempts,
                    old.last_error,
                )
                report.given_up.append(old.id)
            continue
        if deliver(store, send, old.id, parse(old.body), email_from):
            report.resent.append(old.id)
        else:
            report.failed.append(old.id)
    digests = build_digests(
        late,
        notified=lambda _, item: _already_told(item, history),
        run_label=run_label,
        recipient=recipient,
    )
    for digest in digests:  # at most one: this recipient's
        message = digest.message(email_from, now)
        id = store.record_notification(
            recipient, KIND, digest.subject, message.as_string(), digest.run_ids
        )
        report.digests += 1
        if deliver(store, send, id, message, email_from):
            report.sent.append(id)
        else:
            report.failed.append(id)


def _already_told(item: LateItem, history: Sequence[NotificationInfo]) -> bool:
    """Told about this run in this state: any digest naming it (delayed), or one since it was skipped."""
    for n in history:
        if item.run.id not in n.run_ids:
            continue
        if item.kind == "delayed" or n.created_at >= item.run.updated_at:
            return True
    return False


def notify_for_spec(
    home: Home,
    spec: PipelineSpec,
    *,
    send: Sender | None = None,
    store: MetadataStore | None = None,
    now: datetime | None = None,
    run_label: str | None = None,
) -> dict[str, Any]:
    """The notification step of a pipeline's run: its metric type, its SMTP connection."""
    from metadata.repository import MetadataStore

    args = spec.dag_creation_args
    own = store is None
    store = store or MetadataStore.for_home(home)
    try:
        report = notify_owners(
            store,
            send or smtp_sender(args.smtp_conn_id),
            now=now,
            metric_type=spec.metric_type,
            email_from=args.email_from,
            max_attempts=args.notify_max_attempts,
            run_label=run_label,
        )
        return report.as_dict()
    finally:
        if own:
            store.close()
