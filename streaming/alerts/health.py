"""Health alerts: an experiment period whose health checks fail (results.health) is told once.

Batch rows carry each experiment period's health (``health``: ``srm``, ``multiple_groups``,
``no_data:<group>``; ``srm_p_value``). An experiment with at least one watched metric gets
one health state per period, recorded and announced like a metric's alert (the same
ledger, recipients and retries): ``alerting`` while a check fails at the latest date,
``ok`` once they all pass. It rides on the key of the experiment's first watched metric
and first treatment group, under the segment name :data:`HEALTH_SEGMENT`, which no
configured segment can take (segment names are identifiers), so it never mixes with a
metric's own state. Stream rows carry the same checks but leave that state as it was: a
stream look at today's partial data and batch's at yesterday's would flip it twice a day.

The stream has a health state of its own, under :data:`REALTIME_SEGMENT`, to tell within
minutes what batch tells the next day (:func:`realtime_looks`). Its SRM check is the
always-valid test (:meth:`streaming.health.HealthChecks.realtime`), since it is looked at
with every write; with it, users in two groups. A period without users yet is not flagged:
every period starts so. Like a metric's, the state needs two consecutive looks that agree
(:mod:`.stream`), but it is not held once ``alerting``: a real mismatch only gathers
evidence as users arrive, while counts that were briefly wrong (users exposed after a ramp
the store learned late, counted against the allocation before it) clear once corrected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from metadata.records import AlertKey, AlertLook, Findings
from results.schema import ResultRow
from streaming.alerts.rules import AlertPlan

if TYPE_CHECKING:
    from streaming.health import RealtimeHealth

HEALTH_SEGMENT = "(health)"
REALTIME_SEGMENT = "(real-time health)"
METHOD = "health_checks"
REALTIME_METHOD = "always_valid_srm"
STATUS_LENGTH = 32  # the alert tables' status column


def is_health(key: AlertKey) -> bool:
    return key.segment in (HEALTH_SEGMENT, REALTIME_SEGMENT)


def _first_watched(plan: AlertPlan) -> dict[str, str]:
    """Each watched experiment's first watched metric: the key its health states ride on."""
    watched: dict[str, str] = {}
    for experiment, metric in sorted(plan.watches):
        watched.setdefault(experiment, metric)
    return watched


def health_looks(rows: Iterable[ResultRow], plan: AlertPlan) -> list[AlertLook]:
    """One look per watched experiment and period, at the latest date of its batch rows."""
    watched = _first_watched(plan)
    latest: dict[tuple[str, int], tuple[str, dict[str, ResultRow]]] = {}
    for r in rows:
        if r.experiment not in watched or r.segment or r.day_in or r.source != "batch":
            continue
        if r.metric_type not in ("aggregated", "custom"):
            continue
        cell = (r.experiment, r.period_start)
        day, groups = latest.get(cell, ("", {}))
        if r.date > day:
            latest[cell] = (r.date, {r.group: r})
        elif r.date == day:
            groups.setdefault(r.group, r)
    looks = []
    for (experiment, period_start), (day, groups) in sorted(latest.items()):
        treatments = sorted(g for g in groups if (experiment, g) not in plan.controls)
        if not treatments:
            continue
        row = groups[treatments[0]]
        checked = row.srm_p_value is not None or row.health != ""
        found = Findings(
            day=date.fromisoformat(day),
            units=sum(r.exposed for r in groups.values()),
            method=METHOD,
            alpha=0.0,
            moved="unhealthy" if row.health else "",
            p_value=row.srm_p_value,
            status=row.health[:STATUS_LENGTH],
        )
        key = AlertKey(experiment, treatments[0], watched[experiment], period_start, HEALTH_SEGMENT)
        state = ("alerting" if row.health else "ok") if checked else None
        looks.append(AlertLook(key, state, found))
    return looks


def realtime_looks(
    rows: Sequence[ResultRow], health: Iterable[RealtimeHealth], plan: AlertPlan
) -> list[AlertLook]:
    """One look per period of one stream write (``rows``: one experiment and date) whose
    experiment has a watched metric, from the write's real-time verdicts."""
    if not rows:
        return []
    experiment, day = rows[0].experiment, date.fromisoformat(max(r.date for r in rows))
    metric = _first_watched(plan).get(experiment)
    if metric is None:
        return []
    looks = []
    for h in health:
        groups = {r.group for r in rows if r.period_start == h.period_start}
        treatments = sorted(g for g in groups if (experiment, g) not in plan.controls)
        if not treatments:
            continue
        found = Findings(
            day=day,
            units=h.units,
            method=REALTIME_METHOD,
            alpha=h.alpha,
            moved="unhealthy" if h.flags else "",
            p_value=h.p_value,
            status=h.flags[:STATUS_LENGTH],
        )
        key = AlertKey(experiment, treatments[0], metric, h.period_start, REALTIME_SEGMENT)
        looks.append(AlertLook(key, "alerting" if h.flags else "ok", found))
    return looks


def health_subject(key: AlertKey, firing: bool, flags: str) -> str:
    what = "HEALTH" if key.segment == HEALTH_SEGMENT else "REAL-TIME HEALTH"
    if firing:
        return f"[udf] {what} {key.experiment}: {flags or 'a check failed'}"
    return f"[udf] resolved {what} {key.experiment}: every check passes"


def health_summary(key: AlertKey, firing: bool, found: Any) -> str:
    experiment = key.experiment
    if key.segment == REALTIME_SEGMENT:
        if not firing:
            return f"Experiment {experiment} passes its real-time health checks again."
        return (
            f"Experiment {experiment} fails its real-time health checks: {found.status} "
            f"(always-valid SRM p-value {found.p_value:.3g} at {found.units} users). Stop "
            "it or fix its assignment before trusting its comparisons (`udf status "
            "--alerts`); batch's checks follow the next day (`udf status --health`)."
        )
    if not firing:
        return f"Experiment {experiment} passes its health checks again."
    srm = f" (SRM p-value {found.p_value:.3g})" if found.p_value is not None else ""
    return (
        f"Experiment {experiment} fails its health checks: {found.status}{srm}. Its "
        "comparisons are suspect until the assignment is fixed: see `udf status --health`."
    )
