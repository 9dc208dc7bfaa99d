"""Alerts from the stream: every look the results sink writes is judged as it is written.

The results sink calls :meth:`StreamAlerts.look` after each write of an (experiment, date)
slice, with the slice's compared rows: all groups of the experiment, written together in
one transaction, so a look never mixes a new treatment total with an old control one. Only
experiments with a watched metric are evaluated (the watched set is re-read from the
metadata store every :data:`REFRESH_SECONDS`, so a rule loaded while a run goes on is picked
up); the rest cost nothing.

A change of state needs **two consecutive looks that agree** (:class:`Confirm`). Each look
is judged on its own cumulative statistics, so a comparison near the always-valid
boundary flips with every write: in the stream alerts test a 20% drop gave p = 0.036,
0.088, 0.002 at 1,239, 1,297 and 1,437 users, three changes and three messages for one
harm. The group totals also come from several SQL aggregations (exposures, event sums) in
mini-batches, so one write may hold a group's new exposures before their events. Asking
the next look (new data, a second or a few later) to agree costs one flush interval of
delay and removes both; under no effect it only makes an alert rarer.

Once a comparison is ``alerting``, the stream's later looks of its period do not clear it
(:func:`hold_alerts`; the real-time health state is not held, see
:mod:`streaming.alerts.health`). The always-valid p-value is the running minimum of the looks'
(:mod:`stats.sequential.msprt`): when it has fallen below alpha, the harm is established
for the period, and a later look on more users that happens to sit above the boundary is
not evidence of a recovery. Judged look by look, a real 20% drop went alert, resolved,
alert in the stream alerts test even with two looks agreeing (p 0.004 at 1,368 users,
0.055 at 1,705, 0.013 at 1,744); on consistent cumulative looks of seven such workloads
(1,000 to 2,000 users per group, several seeds) the p-value went back above 0.05 in four.
A recovery is still recorded when another evaluator (a batch one, say) finds the
comparison within noise.

An alert is a side effect of the results, not part of them: a failure to evaluate (the
metadata store unreachable, say) is logged and the pipeline goes on; the next look
evaluates again, and deliveries that failed are retried then (:mod:`.delivery`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from streaming.alerts.health import REALTIME_SEGMENT
from udf.logging import get_logger

if TYPE_CHECKING:
    from metadata.records import AlertLook
    from udf.config.alerts import AlertSettings
    from udf.home import Home

log = get_logger(__name__)

REFRESH_SECONDS = 30.0


class Confirm:
    """Withholds a look's state unless the previous look at the comparison (with other
    data: a different number of units) found the same. Memory only: after a restart the
    first look cannot change a state, the second can."""

    def __init__(self) -> None:
        self.history: dict[Any, list[tuple[int, str | None]]] = {}

    def __call__(self, looks: list[AlertLook]) -> list[AlertLook]:
        out = []
        for look in looks:
            seen = self.history.setdefault(look.key, [])
            if seen and seen[-1][0] == look.found.units:
                seen[-1] = (look.found.units, look.state)  # the same look again
            else:
                seen.append((look.found.units, look.state))
                del seen[:-2]
            agreed = len(seen) == 2 and seen[0][1] == seen[1][1]
            out.append(look if agreed else replace(look, state=None))
        return out


def hold_alerts(looks: list[AlertLook], alerting: set[Any]) -> list[AlertLook]:
    """Withhold ``ok`` from the looks at comparisons whose key is in ``alerting`` (see above)."""
    return [replace(x, state=None) if x.state == "ok" and x.key in alerting else x for x in looks]


class StreamAlerts:
    """Evaluates the alerts of the looks one results sink writes (one per sink subtask)."""

    def __init__(self, home: Home, settings: AlertSettings):
        self.home = home
        self.settings = settings
        self.watched: frozenset[str] = frozenset()
        self.read_at = float("-inf")
        self.confirm = Confirm()

    def _watched(self) -> frozenset[str]:
        """The experiments with at least one watched metric (refreshed now and then)."""
        if time.monotonic() - self.read_at >= REFRESH_SECONDS:
            from metadata.repository import MetadataStore
            from streaming.alerts.rules import plan_alerts

            with MetadataStore.for_home(self.home) as store:
                plan = plan_alerts(store.experiments(), store.metrics(), self.settings)
            self.watched = frozenset(e for e, _ in plan.watches)
            self.read_at = time.monotonic()
        return self.watched

    def look(
        self, experiment: str, day: str, rows: Sequence[Any], health: Sequence[Any] = ()
    ) -> None:
        """Judge the rows of one written look (and ``health``, its real-time health verdicts:
        :meth:`streaming.health.HealthChecks.realtime`), record changes once and deliver
        their messages."""
        if not self.settings.enabled:
            return
        try:
            if experiment not in self._watched():
                return
            from metadata.repository import MetadataStore
            from streaming.alerts.evaluate import evaluate_alerts

            with MetadataStore.for_home(self.home) as store:
                states = store.alert_states(experiment=experiment, state="alerting")
                alerting = {s.key for s in states if s.key.segment != REALTIME_SEGMENT}
                report = evaluate_alerts(
                    rows, store, self.settings,
                    confirm=lambda looks: hold_alerts(self.confirm(looks), alerting),
                    realtime=health,
                )  # fmt: skip
            if report.changes or report.deliveries.failed:
                log.info("stream.alerts", experiment=experiment, date=day, **report.as_dict())
        except Exception as exc:  # a side effect: never stop the results for it (see above)
            log.error("stream.alerts_failed", experiment=experiment, date=day, error=repr(exc))
