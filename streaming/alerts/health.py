"""Health alerts: an experiment period whose health checks fail (results.health) is told once.

Batch rows carry each experiment period's health (``health``: ``srm``, ``multiple_groups``,
``no_data:<group>``; ``srm_p_value``). An experiment with at least one watched metric gets
one health state per period, recorded and announced like a metric's alert (the same
ledger, recipients and retries): ``alerting`` while a check fails at the latest date,
``ok`` once they all pass. It rides on the key of the experiment's first watched metric
and first treatment group, under the segment name :data:`HEALTH_SEGMENT`, which no
configured segment can take (segment names are identifiers), so it never mixes with a
metric's own state. Stream rows carry the same checks but leave the state as it was: a
stream look at today's partial data and batch's at yesterday's would flip it twice a day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from metadata.records import AlertKey, AlertLook, Findings
from results.schema import ResultRow
from streaming.alerts.rules import AlertPlan

HEALTH_SEGMENT = "(health)"
METHOD = "health_checks"
STATUS_LENGTH = 32  # the alert tables' status column


def is_health(key: AlertKey) -> bool:
    return key.segment == HEALTH_SEGMENT


def health_looks(rows: Iterable[ResultRow], plan: AlertPlan) -> list[AlertLook]:
    """One look per watched experiment and period, at the latest date of its batch rows."""
    watched: dict[str, str] = {}
    for experiment, metric in sorted(plan.watches):
        watched.setdefault(experiment, metric)
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


def health_subject(experiment: str, firing: bool, flags: str) -> str:
    if firing:
        return f"[udf] HEALTH {experiment}: {flags or 'a check failed'}"
    return f"[udf] resolved HEALTH {experiment}: every check passes"


def health_summary(experiment: str, firing: bool, found: Any) -> str:
    if not firing:
        return f"Experiment {experiment} passes its health checks again."
    srm = f" (SRM p-value {found.p_value:.3g})" if found.p_value is not None else ""
    return (
        f"Experiment {experiment} fails its health checks: {found.status}{srm}. Its "
        "comparisons are suspect until the assignment is fixed: see `udf status --health`."
    )
