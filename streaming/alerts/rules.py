"""Which comparisons are watched, how, and who hears: the catalog and settings, resolved.

A metric is watched for an experiment when it has an alert rule (the metric's ``alert``, or
the experiment's own rule under ``alerts.metrics``) and the experiment selects it (or
selects nothing, so every metric applies), unless the experiment switched alerts off. The
test is the experiment's ``analysis.sequential`` method when that method is always valid
(valid at every look, however often one looks), else :data:`DEFAULT_METHOD`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from udf.config.catalog import DEFAULT_ALPHA

if TYPE_CHECKING:
    from metadata.records import ExperimentInfo, MetricInfo
    from udf.config.alerts import AlertSettings

# Sequential methods whose error guarantee holds under continuous monitoring (stats.sequential).
ALWAYS_VALID = ("msprt", "confidence_sequence")
DEFAULT_METHOD = "msprt"


@dataclass(frozen=True)
class Watch:
    """How one experiment's metric is watched and who is told when its state changes."""

    direction: str  # the alarming move: decrease | increase | any
    alpha: float
    method: str  # one of ALWAYS_VALID
    emails: tuple[str, ...]
    webhooks: tuple[str, ...]  # names in the settings' alerts.webhooks
    segments: bool  # also watch each segment value


@dataclass(frozen=True)
class AlertPlan:
    """The watched (experiment, metric) pairs and each experiment's control groups."""

    watches: dict[tuple[str, str], Watch]
    controls: frozenset[tuple[str, str]]

    def watch(self, experiment: str, metric: str) -> Watch | None:
        return self.watches.get((experiment, metric))


def method_for(analysis: dict[str, Any] | None) -> str:
    """The experiment's sequential method if it is always valid, else :data:`DEFAULT_METHOD`."""
    chosen = (analysis or {}).get("sequential", "none")
    return chosen if chosen in ALWAYS_VALID else DEFAULT_METHOD


def realtime_method(analysis: dict[str, Any] | None) -> str:
    """The sequential method of a stream row: the experiment's own, else :data:`DEFAULT_METHOD`.

    Stream rows are looked at whenever the sink writes, so an experiment that names no method
    gets the always-valid default (the one the alerts use); one that names a method keeps it,
    as its batch rows do.
    """
    chosen = (analysis or {}).get("sequential", "none")
    return DEFAULT_METHOD if chosen == "none" else str(chosen)


def realtime_analysis(analysis: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each experiment's analysis settings for stream rows (:func:`realtime_method`)."""
    return {e: {**a, "sequential": realtime_method(a)} for e, a in analysis.items()}


def plan_alerts(
    experiments: Sequence[ExperimentInfo], metrics: Sequence[MetricInfo], settings: AlertSettings
) -> AlertPlan:
    """Resolve every experiment's watched metrics from the stored catalog and the settings."""
    catalog = {m.name: m for m in metrics}
    watches: dict[tuple[str, str], Watch] = {}
    controls: set[tuple[str, str]] = set()
    for exp in experiments:
        controls.update((exp.name, g.name) for g in exp.groups if g.is_control)
        own = exp.alerts or {}
        if not own.get("enabled", True):
            continue
        analysis = exp.analysis or {}
        for name in exp.metrics or tuple(catalog):
            metric = catalog.get(name)
            rule = (own.get("metrics") or {}).get(name) or (metric.alert if metric else None)
            if metric is None or rule is None:
                continue
            emails = {
                *metric.owners,
                *rule.get("recipients", ()),
                *own.get("recipients", ()),
                *settings.recipients,
            }
            hooks = rule.get("webhooks")
            watches[(exp.name, name)] = Watch(
                direction=rule["direction"],
                alpha=float(rule.get("alpha") or analysis.get("alpha", DEFAULT_ALPHA)),
                method=method_for(analysis),
                emails=tuple(sorted(emails)),
                webhooks=tuple(sorted(settings.webhooks) if hooks is None else hooks),
                segments=bool(rule.get("segments", False)),
            )
    return AlertPlan(watches, frozenset(controls))
