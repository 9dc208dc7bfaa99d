"""``udf validate --date D`` and the daily validation DAG: recompute, check, store, email.

1. The day's ``aggregated`` metrics are recomputed in batch with ``udf compute``'s own
   function (:func:`udf.framework.tasks.compute_now`: recorded in the lifecycle, leased);
2. the stream rows of the day and the day before and the batch rows of the day are read
   from the results store, each experiment is classified from its ramps in the metadata
   store, and :func:`streaming.validation.rules.validate` checks the three rules;
3. the report is stored in the metadata store (``validation_reports``);
4. on a violation, one email per recipient (the settings' ``validation.recipients`` and the
   owners of the metrics at fault) is queued in the ``notifications`` ledger as ``pending``
   and then sent; a message the SMTP server did not take stays ``failed`` with the error,
   and every later validation (or ``udf validate --retry-emails``) tries it again, up to
   the alerts' ``max_attempts``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from streaming.validation.rules import Report, end_of, first_period_starts, scenario_of, validate
from udf.home import Home

if TYPE_CHECKING:
    from metadata.repository import MetadataStore
    from udf.framework.mail import Sender
    from udf.settings import Settings

log = logging.getLogger(__name__)

EMAIL_KIND = "validation"
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Outcome:
    report: Report
    report_id: int
    emails_sent: list[int]
    emails_failed: list[int]


def recompute_batch(home: Home, day: date, settings: Settings) -> dict:
    """The day's ``aggregated`` metrics recomputed in batch (``udf compute``'s function)."""
    from udf.framework.tasks import compute_now

    return compute_now(home, "aggregated", day, settings=settings)


def check(home: Home, day: date, settings: Settings, store: MetadataStore) -> Report:
    """Read the stream and batch rows and check the rules (no batch recompute here)."""
    from metric_types.plan import excluding
    from results.comparisons import analysis_specs
    from results.stores import open_store

    with open_store(home, settings) as results:
        stream = results.read(
            source="stream", metric_type="aggregated", date_from=day - timedelta(days=1),
            date_to=day,
        )  # fmt: skip
        batch = results.read(source="batch", metric_type="aggregated", date_from=day, date_to=day)
    window, through = settings.window_ms, end_of(day)
    scenarios: dict[str, str] = {}
    ramps: dict[tuple[str, str], list[int]] = {}
    experiments = store.experiments()
    specs = analysis_specs(
        [e.name for e in experiments], {e.name: e.analysis or {} for e in experiments}
    )
    for e in experiments:
        groups = [[r.ramp_ts for r in g.ramps if r.ramp_ts < through] for g in e.groups]
        scenarios[e.name] = scenario_of(groups, window, through)
        for g, ts in zip(e.groups, groups, strict=True):
            ramps[e.name, g.name] = ts
    return validate(
        day, stream, batch, scenarios=scenarios,
        first_periods=first_period_starts(ramps, window),
        threshold=settings.validation.max_difference,
        keep=settings.validation.listed_violations,
        excluding=excluding(specs),
    )  # fmt: skip


def run_validation(
    home: Home,
    day: date,
    settings: Settings,
    *,
    recompute: bool = True,
    deliver: bool = True,
    send: Sender | None = None,
    store: MetadataStore | None = None,
) -> Outcome:
    """The whole validation of ``day`` (see the module docstring)."""
    from metadata.repository import MetadataStore

    if recompute:
        recompute_batch(home, day, settings)
    own = store is None
    store = store or MetadataStore.for_home(home)
    try:
        report = check(home, day, settings, store)
        report_id = store.record_validation(
            day, passed=report.passed, violations=report.violation_count,
            threshold=report.threshold, max_difference=report.max_difference,
            report=report.to_dict(),
        )  # fmt: skip
        log.info(
            "validation of %s: %d violation(s), largest difference %.3g (report %d)",
            day, report.violation_count, report.max_difference, report_id,
        )  # fmt: skip
        if not report.passed:
            queue_emails(store, report, report_id, settings)
        sent, failed = deliver_emails(store, settings, send) if deliver else ([], [])
        return Outcome(report, report_id, sent, failed)
    finally:
        if own:
            store.close()


def recipients(store: MetadataStore, report: Report, settings: Settings) -> list[str]:
    """The settings' recipients and the owners of the metrics with a violation."""
    at_fault = {v.metric for v in report.violations}
    owners = [o for m in store.metrics() if m.name in at_fault for o in m.owners]
    return list(dict.fromkeys([*settings.validation.recipients, *owners]))


def queue_emails(
    store: MetadataStore, report: Report, report_id: int, settings: Settings
) -> list[int]:
    """One ``pending`` email per recipient in the ``notifications`` ledger (sent afterwards)."""
    from streaming.validation.report import subject_of
    from udf.framework.mail import compose

    subject = subject_of(report)
    ids = []
    for recipient in recipients(store, report, settings):
        message = compose(
            TEMPLATES, "validation", {"report": report, "report_id": report_id},
            subject=subject, recipient=recipient, email_from=settings.alerts.email_from,
            now=datetime.now(UTC), kind=EMAIL_KIND,
        )  # fmt: skip
        ids.append(store.record_notification(recipient, EMAIL_KIND, subject, message.as_string()))
    if not ids:
        log.warning("validation of %s failed and nobody is set to hear it "
                    "(settings: validation.recipients)", report.day)  # fmt: skip
    return ids


def deliver_emails(
    store: MetadataStore, settings: Settings, send: Sender | None = None
) -> tuple[list[int], list[int]]:
    """Send every ``pending`` or ``failed`` validation email once (up to ``max_attempts``)."""
    from streaming.alerts.delivery import email_sender
    from udf.framework.mail import deliver, parse

    waiting = [
        n for state in ("pending", "failed") for n in store.notifications(state=state, kind=EMAIL_KIND)
        if n.attempts < settings.alerts.max_attempts
    ]  # fmt: skip
    sent: list[int] = []
    failed: list[int] = []
    if not waiting:
        return sent, failed
    send = send or email_sender(settings.alerts)
    holder = f"udf-validate-{datetime.now(UTC).timestamp()}"
    for message in sorted(waiting, key=lambda n: n.id):
        key = f"validation-message:{message.id}"
        if not store.acquire_lease(key, holder, 300.0):
            continue
        try:
            current = store.notification(message.id)
            if current is None or current.state == "sent":
                continue
            ok = deliver(store, send, message.id, parse(current.body), settings.alerts.email_from)
            (sent if ok else failed).append(message.id)
        finally:
            store.release(key, holder)
    return sent, failed
