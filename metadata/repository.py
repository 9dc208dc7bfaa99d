"""The metadata store: the one place that opens ORM sessions.

Everything else (the CLI, the Airflow framework, the engines) talks to :class:`MetadataStore`
and gets frozen records back (:mod:`metadata.records`). Each public method is one
transaction. Opening a store migrates an empty or outdated database to the newest schema.

Leases are the framework's "list of metrics being computed": taking one relies on the
database's unique key (insert) or on an atomic conditional update of an expired row, never
on a check followed by an insert, so concurrent DAG runs on PostgreSQL or MariaDB cannot
both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from metadata import _sync
from metadata._alerts import AlertsMixin
from metadata._base import retry_on_disconnect
from metadata._leases import LeasesMixin
from metadata._runs import RunsMixin
from metadata._validation import ValidationMixin
from metadata.db import describe_error
from metadata.models import (
    Experiment,
    ExperimentGroup,
    ExperimentMetric,
    MetricDefinition,
    Ramp,
    Segment,
)
from metadata.records import (
    CatalogSummary,
    ExperimentInfo,
    GroupInfo,
    ImportSummary,
    MetricInfo,
    RampInfo,
    RampRow,
    SegmentInfo,
)
from udf.errors import InputError, MetadataError

if TYPE_CHECKING:
    from udf.config.catalog import ExperimentSelection, MetricSpec, SegmentSpec
    from udf.home import Home


class MetadataStore(RunsMixin, LeasesMixin, AlertsMixin, ValidationMixin):
    """Experiments and ramps, the metric catalog, run lifecycle, leases, notifications, alerts,
    validation reports."""

    @classmethod
    def for_home(cls, home: Home, **kwargs: Any) -> MetadataStore:
        """The store of a platform home (``$UDF_METADATA_URL`` or SQLite under the home)."""
        return cls(home.metadata_url, **kwargs)

    def import_ramps(self, rows: Iterable[RampRow]) -> ImportSummary:
        """Add ramps (and their experiments and groups); identical rows change nothing.

        Refuses (:class:`InputError`, nothing stored) a history in which a group's allocation
        falls: ramps are increases (the contract §2). An experiment left without a ``control``
        group is imported (its control may come in a later file) and named in the summary.
        """
        rows = list(rows)
        names = sorted({r.experiment for r in rows})
        now = self._clock()
        # Importers racing on a new experiment or group: the unique keys let one commit,
        # the others go again and find its rows (re-importing the same rows is a no-op).
        counts = self._retrying(
            lambda s: _import_ramps(s, rows, names, now),
            "cannot import the ramps",
            duplicates_are_races=True,
        )
        return ImportSummary(
            experiments=len(names),
            groups=len({(r.experiment, r.group) for r in rows}),
            experiments_added=counts["experiments"],
            groups_added=counts["groups"],
            ramps_added=counts["added"],
            ramps_updated=counts["updated"],
            ramps_unchanged=counts["unchanged"],
            without_control=tuple(counts["without_control"]),
        )

    def experiments(self, names: Sequence[str] | None = None) -> list[ExperimentInfo]:
        """Every experiment (or those named), with groups, ramp history and selections.

        The selected metrics' names come from one plain query, not as ORM objects: a
        catalog of 15,000 metrics selected by 120 experiments is 1.8 M selections.
        """
        query = (
            select(Experiment)
            .order_by(Experiment.name)
            .options(
                selectinload(Experiment.groups).selectinload(ExperimentGroup.ramps),
                selectinload(Experiment.segments),
            )
        )
        if names is not None:
            query = query.where(Experiment.name.in_(list(names)))
        with self._tx() as s:
            found = list(s.scalars(query))
            selected: dict[int, list[str]] = {e.id: [] for e in found}
            chosen = (
                select(ExperimentMetric.experiment_id, MetricDefinition.name)
                .join(MetricDefinition, MetricDefinition.id == ExperimentMetric.metric_id)
                .order_by(MetricDefinition.name)
            )
            if names is not None:
                chosen = chosen.where(ExperimentMetric.experiment_id.in_(list(selected)))
            for experiment_id, metric in s.execute(chosen):
                if experiment_id in selected:
                    selected[experiment_id].append(metric)
            return [_experiment_info(e, selected[e.id]) for e in found]

    def experiment(self, name: str) -> ExperimentInfo | None:
        found = self.experiments([name])
        return found[0] if found else None

    # -- catalog -----------------------------------------------------------------------------

    def sync_catalog(
        self,
        metrics: Sequence[MetricSpec],
        segments: Sequence[SegmentSpec],
        selections: Sequence[ExperimentSelection],
        source_files: Mapping[str, str] | None = None,
        *,
        prune: bool = False,
    ) -> CatalogSummary:
        """Upsert the catalog given, in one transaction (see :mod:`metadata._sync`).

        ``source_files`` maps metric names to the file that defines them. With ``prune`` the
        catalog is the whole truth: missing metrics are disabled, missing segments removed,
        unmentioned experiments deselected.
        """
        try:
            with self._tx() as s:
                return _sync.sync_catalog(
                    s, metrics, segments, selections, source_files or {}, prune
                )
        except IntegrityError as exc:
            raise MetadataError(
                f"the catalog changed concurrently, nothing synced; retry ({describe_error(exc)})"
            ) from exc

    def register_default_metrics(self, event_types: Sequence[str]) -> list[str]:
        """Make every event type a metric of its own (unless a configured metric has its name).

        Idempotent; concurrent registrations of the same name are races the unique key
        settles (the loser goes again and finds the row).
        """
        return self._retrying(
            lambda s: _sync.register_default_metrics(s, list(event_types)),
            "cannot register the default metrics",
            duplicates_are_races=True,
        )

    def metrics(self, include_disabled: bool = False) -> list[MetricInfo]:
        query = (
            select(MetricDefinition)
            .order_by(MetricDefinition.name)
            .options(selectinload(MetricDefinition.owners))
        )
        if not include_disabled:
            query = query.where(MetricDefinition.enabled)
        with self._tx() as s:
            return [_metric_info(m) for m in s.scalars(query)]

    def segments(self) -> list[SegmentInfo]:
        with self._tx() as s:
            return [
                SegmentInfo(g.name, g.field, g.description)
                for g in s.scalars(select(Segment).order_by(Segment.name))
            ]


retry_on_disconnect(MetadataStore)


def _import_ramps(
    s: Session, rows: list[RampRow], names: list[str], now: datetime
) -> dict[str, Any]:
    experiments = {
        e.name: e
        for e in s.scalars(
            select(Experiment)
            .where(Experiment.name.in_(names))
            .options(selectinload(Experiment.groups).selectinload(ExperimentGroup.ramps))
        )
    }
    counts: dict[str, Any] = dict.fromkeys(
        ("experiments", "groups", "added", "updated", "unchanged"), 0
    )
    groups: dict[tuple[str, str], ExperimentGroup] = {}
    for row in rows:
        exp = experiments.get(row.experiment)
        if exp is None:
            exp = experiments[row.experiment] = Experiment(
                name=row.experiment, description="", groups=[]
            )
            s.add(exp)
            counts["experiments"] += 1
        group = groups.get((row.experiment, row.group))
        if group is None:
            group = next((g for g in exp.groups if g.name == row.group), None)
            if group is None:
                group = ExperimentGroup(name=row.group, is_control=row.group == "control", ramps=[])
                exp.groups.append(group)
                counts["groups"] += 1
            groups[(row.experiment, row.group)] = group
        ramp = next((r for r in group.ramps if r.ramp_ts == row.ramp_ts), None)
        if ramp is None:
            group.ramps.append(Ramp(ramp_ts=row.ramp_ts, allocation=row.allocation))
            counts["added"] += 1
        elif ramp.allocation != row.allocation:
            ramp.allocation = row.allocation
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
            continue
        exp.updated_at = now
    falls = [
        f"{experiment}/{name}: allocation falls from {a.allocation:g}% at {_utc(a.ramp_ts)} "
        f"to {b.allocation:g}% at {_utc(b.ramp_ts)}"
        for (experiment, name), group in groups.items()
        for a, b in pairwise(sorted(group.ramps, key=lambda r: r.ramp_ts))
        if b.allocation < a.allocation
    ]
    if falls:
        raise InputError(
            f"{'; '.join(falls)}: a ramp only increases a group's allocation (the contract §2); "
            "nothing imported"
        )
    counts["without_control"] = [
        name for name in names if not any(g.name == "control" for g in experiments[name].groups)
    ]
    return counts


def _utc(ms: int) -> str:
    return f"{datetime.fromtimestamp(ms / 1000, tz=UTC):%Y-%m-%dT%H:%M}Z"


def _experiment_info(e: Experiment, metrics: Sequence[str]) -> ExperimentInfo:
    groups = tuple(
        GroupInfo(g.name, g.is_control, tuple(RampInfo(r.ramp_ts, r.allocation) for r in g.ramps))
        for g in e.groups
    )
    return ExperimentInfo(
        e.name, e.description, groups, tuple(metrics),
        tuple(s.name for s in e.segments), dict(e.analysis) if e.analysis else None,
        e.created_at, e.updated_at, dict(e.alerts) if e.alerts else None,
    )  # fmt: skip


def _metric_info(m: MetricDefinition) -> MetricInfo:
    return MetricInfo(
        m.name, m.metric_type, dict(m.params), m.description, tuple(o.email for o in m.owners),
        m.sla_hours, tuple(m.sources), tuple(m.segments), m.enabled, m.source_file,
        m.created_at, m.updated_at, dict(m.alert) if m.alert else None,
    )  # fmt: skip
