"""Builders shared by the framework tests (unit, and the same tests on database servers)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from metadata.records import RampRow
from metadata.repository import MetadataStore
from udf.archive.seal import datetime_to_ms, seal
from udf.config.catalog import AggregatedMetric, ExperimentSelection
from udf.home import Home

DS = date(2026, 1, 5)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """A clock the tests move by hand, so lease expiry and SLAs need no sleeping."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def add_metrics(store: MetadataStore, *names: str, **fields: object) -> None:
    """Aggregated metrics named ``names`` (each counting the event type of its name)."""
    store.sync_catalog(
        [AggregatedMetric(type="aggregated", name=n, event_type=n, **fields) for n in names],  # type: ignore[arg-type]
        [],
        [],
    )


def add_experiment(
    store: MetadataStore,
    name: str = "exp",
    ramp: datetime = T0,
    metrics: list[str] | None = None,
) -> None:
    """An experiment ramped at ``ramp`` selecting ``metrics`` (default: every configured one)."""
    ms = datetime_to_ms(ramp)
    store.import_ramps([RampRow(name, "control", ms, 50.0), RampRow(name, "treatment", ms, 50.0)])
    chosen = [m.name for m in store.metrics() if not m.is_default] if metrics is None else metrics
    if chosen:
        store.sync_catalog([], [], [ExperimentSelection(experiment=name, metrics=chosen)])


def seal_through(
    home: Home, day: date, topics: tuple[str, ...] = ("events", "activations")
) -> None:
    """Declare ``topics`` complete through the end of ``day``."""
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    for topic in topics:
        seal(home.archive, topic, datetime_to_ms(end), force=True)
