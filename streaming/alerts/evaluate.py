"""One evaluation: result rows in, changes of alert state recorded, messages delivered.

The streaming sink calls :func:`evaluate_alerts` with each flush of result rows (batch may
call it with its rows too). Looks are judged (:mod:`.decision`), recorded with the messages
of any change in one transaction (:meth:`MetadataStore.record_alert_looks`), then every
undelivered alert message is tried (:mod:`.delivery`). An evaluation with no rows only
retries deliveries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streaming.alerts.decision import judge, select_pairs
from streaming.alerts.delivery import Deliveries, Poster, deliver_pending, email_sender
from streaming.alerts.delivery import urllib_poster as urllib_poster
from streaming.alerts.health import health_looks, realtime_looks
from streaming.alerts.messages import outgoing
from streaming.alerts.rules import plan_alerts

if TYPE_CHECKING:
    from metadata.records import AlertChange, AlertLook
    from metadata.repository import MetadataStore
    from results.schema import ResultRow
    from streaming.health import RealtimeHealth
    from udf.config.alerts import AlertSettings
    from udf.framework.mail import Sender

log = logging.getLogger(__name__)


@dataclass
class AlertReport:
    """What one evaluation did."""

    looks: int = 0
    changes: list[AlertChange] = field(default_factory=list)
    deliveries: Deliveries = field(default_factory=Deliveries)

    def as_dict(self) -> dict[str, Any]:
        return {
            "looks": self.looks,
            "changes": [
                {
                    "id": c.id,
                    "experiment": c.key.experiment,
                    "group": c.key.group,
                    "metric": c.key.metric,
                    "from": c.from_state,
                    "to": c.to_state,
                }
                for c in self.changes
            ],
            "sent": self.deliveries.sent,
            "failed": self.deliveries.failed,
            "given_up": self.deliveries.given_up,
        }


def evaluate_alerts(
    rows: Iterable[ResultRow],
    store: MetadataStore,
    settings: AlertSettings,
    *,
    send: Sender | None = None,
    post: Poster | None = None,
    holder: str | None = None,
    confirm: Callable[[list[AlertLook]], list[AlertLook]] | None = None,
    realtime: Iterable[RealtimeHealth] = (),
) -> AlertReport:
    """Judge the watched comparisons in ``rows``, record changes once, deliver their messages.

    ``settings`` is ``load_settings(home).alerts``; ``send`` and ``post`` default to its
    SMTP server and to HTTP POSTs with its timeout; ``holder`` names this evaluator in the
    delivery leases (host, pid and a random suffix by default). Times come from the store's
    clock. Safe to call from several processes at once and again after a restart.
    ``confirm`` may withhold a look's state (set it to None) before it is recorded: the
    stream's sink requires two consecutive looks to agree (:mod:`.stream`). ``realtime``:
    the stream's health verdicts of the write ``rows`` come from (:mod:`.health`).
    """
    from udf.framework.leases import default_holder

    report = AlertReport()
    if not settings.enabled:
        return report
    plan = plan_alerts(store.experiments(), store.metrics(), settings)
    rows = list(rows)
    looks = judge(select_pairs(rows, plan), settings.min_units)
    looks += realtime_looks(rows, realtime, plan)
    if confirm is not None:
        looks = confirm(looks)
    looks += health_looks(rows, plan)
    report.looks = len(looks)

    def compose(change: AlertChange) -> list[Any]:
        watch = plan.watch(change.key.experiment, change.key.metric)
        assert watch is not None
        return outgoing(change, watch, settings.email_from)

    report.changes = store.record_alert_looks(looks, compose)
    for change in report.changes:
        log.warning(
            "alert %s/%s %s: %s -> %s",
            change.key.experiment,
            change.key.group,
            change.key.metric,
            change.from_state,
            change.to_state,
        )
    report.deliveries = deliver_pending(
        store,
        settings,
        send=send or email_sender(settings),
        post=post or urllib_poster(settings.webhook_timeout_seconds),
        holder=holder or default_holder(),
    )
    return report
