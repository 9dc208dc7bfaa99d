"""A platform home with a SQLite metadata store on a hand-moved clock, and builders for tests.

The same fixtures are provided for PostgreSQL and MariaDB by
``tests/integration/framework/conftest.py``, which re-runs the plan and lease tests there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from metadata.records import RampRow
from metadata.repository import MetadataStore
from udf.archive.seal import datetime_to_ms, seal
from udf.config.catalog import AggregatedMetric
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


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 6, 2, tzinfo=UTC))  # DS ended two hours ago


@pytest.fixture
def store(home: Home, clock: Clock) -> Iterator[MetadataStore]:
    with MetadataStore.for_home(home, clock=clock) as opened:
        yield opened


def add_metrics(store: MetadataStore, *names: str, **fields: object) -> None:
    """Aggregated metrics named ``names`` (each counting the event type of its name)."""
    store.sync_catalog(
        [AggregatedMetric(type="aggregated", name=n, event_type=n, **fields) for n in names],  # type: ignore[arg-type]
        [],
        [],
    )


def add_experiment(store: MetadataStore, name: str = "exp", ramp: datetime = T0) -> None:
    ms = datetime_to_ms(ramp)
    store.import_ramps([RampRow(name, "control", ms, 50.0), RampRow(name, "treatment", ms, 50.0)])


def seal_through(
    home: Home, day: date, topics: tuple[str, ...] = ("events", "activations")
) -> None:
    """Declare ``topics`` complete through the end of ``day``."""
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    for topic in topics:
        seal(home.archive, topic, datetime_to_ms(end), force=True)
