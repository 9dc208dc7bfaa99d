"""Catalog synchronisation inside one ORM session (used only by :mod:`metadata.repository`).

Metrics and segments are upserted by name (a metric's owners are replaced), and each
experiment named in a selection gets exactly the metrics and segments selected for it.
Running it twice with the same catalog changes nothing.

With ``prune`` the catalog passed in is the whole truth: metrics missing from it are
disabled (never deleted: runs refer to them), missing segments are removed and experiments
it does not mention lose their selection. Without ``prune`` (the default) nothing outside
the catalog given is touched, so loading the valid files of a partly broken catalog cannot
switch off the metrics of the broken ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, selectinload

from metadata.models import (
    Experiment,
    ExperimentMetric,
    ExperimentSegment,
    MetricDefinition,
    MetricOwner,
    Segment,
)
from metadata.records import DEFAULT_MARK, CatalogSummary
from udf.errors import MetadataError

if TYPE_CHECKING:
    from udf.config.catalog import ExperimentSelection, MetricSpec, SegmentSpec

PAIRS_PER_STATEMENT = 10_000  # ids in one DELETE's IN (...): under every server's limit


def _unique(names: Sequence[str], what: str) -> None:
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        raise MetadataError(f"duplicate {what} names in the catalog: {', '.join(dupes)}")


def sync_metrics(
    session: Session,
    metrics: Sequence[MetricSpec],
    source_files: Mapping[str, str],
    prune: bool,
) -> dict[str, int]:
    _unique([m.name for m in metrics], "metric")
    existing = {
        m.name: m
        for m in session.scalars(
            select(MetricDefinition).options(selectinload(MetricDefinition.owners))
        )
    }
    counts = dict.fromkeys(("added", "updated", "unchanged", "disabled"), 0)
    for spec in metrics:
        values: dict[str, Any] = {
            "metric_type": spec.type,
            "params": spec.params(),
            "description": spec.description,
            "sla_hours": float(spec.sla_hours),
            "sources": list(spec.sources),
            "segments": list(spec.segments),
            "enabled": True,
            "alert": spec.alert.model_dump() if spec.alert else None,
        }
        owners = sorted(set(spec.owners))
        row = existing.get(spec.name)
        # A caller that does not know the defining file keeps the one recorded before.
        values["source_file"] = source_files.get(spec.name, row.source_file if row else None)
        if row is None:
            row = MetricDefinition(name=spec.name, **values)
            row.owners = [MetricOwner(email=email) for email in owners]
            session.add(row)
            counts["added"] += 1
            continue
        current_owners = sorted(o.email for o in row.owners)
        if all(getattr(row, k) == v for k, v in values.items()) and current_owners == owners:
            counts["unchanged"] += 1
            continue
        for key, value in values.items():
            setattr(row, key, value)
        # Keep the rows of owners that stay: replacing them all would insert a duplicate
        # (metric, email) before the old row is deleted.
        row.owners = [o for o in row.owners if o.email in owners] + [
            MetricOwner(email=email) for email in owners if email not in current_owners
        ]
        counts["updated"] += 1
    wanted = {m.name for m in metrics}
    for name, row in existing.items():
        if prune and name not in wanted and row.enabled and not is_default(row):
            row.enabled = False
            counts["disabled"] += 1
    session.flush()
    return counts


def sync_segments(session: Session, segments: Sequence[SegmentSpec], prune: bool) -> dict[str, int]:
    _unique([s.name for s in segments], "segment")
    existing = {s.name: s for s in session.scalars(select(Segment))}
    counts = dict.fromkeys(("added", "updated", "unchanged", "removed"), 0)
    for spec in segments:
        row = existing.get(spec.name)
        if row is None:
            session.add(Segment(name=spec.name, field=spec.field, description=spec.description))
            counts["added"] += 1
        elif (row.field, row.description) != (spec.field, spec.description):
            row.field, row.description = spec.field, spec.description
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    wanted = {s.name for s in segments}
    gone = [row.id for name, row in existing.items() if prune and name not in wanted]
    if gone:
        session.execute(delete(ExperimentSegment).where(ExperimentSegment.segment_id.in_(gone)))
        for name in [n for n in existing if n not in wanted]:  # prune is set
            session.delete(existing[name])
        counts["removed"] = len(gone)
    session.flush()
    return counts


def sync_selections(
    session: Session, selections: Sequence[ExperimentSelection], prune: bool
) -> tuple[int, int]:
    """Set the selection of the experiments named (of all with ``prune``); (added, changed)."""
    wanted: dict[str, tuple[set[str], set[str]]] = {}
    analysis: dict[str, dict] = {}
    alerts: dict[str, dict] = {}
    for sel in selections:
        metrics, segments = wanted.setdefault(sel.experiment, (set(), set()))
        metrics.update(sel.metrics)
        segments.update(sel.segments)
        analysis[sel.experiment] = sel.analysis.model_dump()
        alerts[sel.experiment] = sel.alerts.model_dump()
    metric_ids = {
        m.name: m.id
        for m in session.scalars(select(MetricDefinition).where(MetricDefinition.enabled))
    }
    segment_ids = {s.name: s.id for s in session.scalars(select(Segment))}
    unknown = sorted(
        {
            f"metric {n!r} (experiment {e})"
            for e, (ms, _) in wanted.items()
            for n in ms
            if n not in metric_ids
        }
        | {
            f"segment {n!r} (experiment {e})"
            for e, (_, ss) in wanted.items()
            for n in ss
            if n not in segment_ids
        }
    )
    if unknown:
        raise MetadataError("the catalog selects unknown " + ", ".join(unknown))
    experiments = {e.name: e for e in session.scalars(select(Experiment))}
    added = 0
    for name in wanted:
        if name not in experiments:
            experiments[name] = Experiment(name=name, description="")
            session.add(experiments[name])
            added += 1
    session.flush()
    # as (experiment, metric/segment) id pairs, never as ORM objects: a catalog of 15,000
    # metrics selected by 120 experiments is 1.8 M of them (docs/benchmarks.md)
    metric_pair = (ExperimentMetric.experiment_id, ExperimentMetric.metric_id)
    segment_pair = (ExperimentSegment.experiment_id, ExperimentSegment.segment_id)
    current_m = {(e, m) for e, m in session.execute(select(*metric_pair))}
    current_s = {(e, s) for e, s in session.execute(select(*segment_pair))}
    if not prune:
        named = {experiments[e].id for e in wanted}
        current_m = {pair for pair in current_m if pair[0] in named}
        current_s = {pair for pair in current_s if pair[0] in named}
    want_m = {(experiments[e].id, metric_ids[n]) for e, (ms, _) in wanted.items() for n in ms}
    want_s = {(experiments[e].id, segment_ids[n]) for e, (_, ss) in wanted.items() for n in ss}
    _replace_pairs(session, metric_pair, current_m, want_m)
    _replace_pairs(session, segment_pair, current_s, want_s)
    changed = {e for e, _ in (current_m ^ want_m) | (current_s ^ want_s)}
    for name, spec in analysis.items():
        if experiments[name].analysis != spec or experiments[name].alerts != alerts[name]:
            experiments[name].analysis = spec
            experiments[name].alerts = alerts[name]
            changed.add(experiments[name].id)
    session.flush()
    return added, len(changed)


def _replace_pairs(
    session: Session,
    columns: tuple[Any, Any],
    current: set[tuple[int, int]],
    wanted: set[tuple[int, int]],
) -> None:
    """Delete the ``current`` id pairs of a selection table not ``wanted`` (per experiment, a
    chunk of ids per statement) and insert the ``wanted`` ones not ``current`` (one
    executemany): statements, not one ORM object per pair."""
    owner, member = columns
    table = owner.class_.__table__  # Core statements: the ORM's bulk insert is 3x slower
    gone: dict[int, list[int]] = {}
    for e, m in sorted(current - wanted):
        gone.setdefault(e, []).append(m)
    for e, ids in gone.items():
        for at in range(0, len(ids), PAIRS_PER_STATEMENT):
            chunk = ids[at : at + PAIRS_PER_STATEMENT]
            session.execute(delete(table).where(owner == e, member.in_(chunk)))
    new = sorted(wanted - current)
    if new:
        session.execute(insert(table), [{owner.key: e, member.key: m} for e, m in new])


def sync_catalog(
    session: Session,
    metrics: Sequence[MetricSpec],
    segments: Sequence[SegmentSpec],
    selections: Sequence[ExperimentSelection],
    source_files: Mapping[str, str],
    prune: bool = False,
) -> CatalogSummary:
    m = sync_metrics(session, metrics, source_files, prune)
    s = sync_segments(session, segments, prune)
    experiments_added, selections_changed = sync_selections(session, selections, prune)
    return CatalogSummary(
        metrics_added=m["added"],
        metrics_updated=m["updated"],
        metrics_unchanged=m["unchanged"],
        metrics_disabled=m["disabled"],
        segments_added=s["added"],
        segments_updated=s["updated"],
        segments_unchanged=s["unchanged"],
        segments_removed=s["removed"],
        experiments_added=experiments_added,
        selections_changed=selections_changed,
    )


def is_default(row: MetricDefinition) -> bool:
    """A metric the platform registered for an event type (the contract §3), not a config's."""
    return row.source_file is None and bool((row.params or {}).get(DEFAULT_MARK))


def register_default_metrics(session: Session, event_types: Sequence[str]) -> list[str]:
    """Register one ``aggregated`` count metric per event type not yet in the catalog.

    A configured metric of the same name wins: it is left as it is. Returns the names added.
    """
    existing = set(session.scalars(select(MetricDefinition.name)))
    added = []
    for event_type in sorted(set(event_types) - existing):
        session.add(
            MetricDefinition(
                name=event_type,
                metric_type="aggregated",
                params={"event_type": event_type, "statistic": "count", DEFAULT_MARK: True},
                description=f"every {event_type} event (a default metric)",
                sla_hours=30.0,
                sources=["events", "activations"],
                segments=[],
                enabled=True,
                source_file=None,
            )
        )
        added.append(event_type)
    session.flush()
    return added
