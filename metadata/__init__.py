"""The metadata store: experiments and ramps, the metric catalog, run lifecycle, leases, notifications.

One relational database (SQLite under the platform home by default; PostgreSQL or
MySQL/MariaDB through ``$UDF_METADATA_URL``) behind :class:`MetadataStore`, whose methods
return frozen records. The schema is owned by the Alembic migrations shipped in
``metadata/migrations`` (see :mod:`metadata.db`). :mod:`metadata.periods` is pure and shared
with the batch and streaming engines.

Import the store lazily where start-up time matters (``from metadata.repository import
MetadataStore``): this package's top level stays free of SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from metadata.periods import DEFAULT_WINDOW_DAYS, Period, aggregation_periods, period_at, window_ms

if TYPE_CHECKING:
    from metadata.db import current_revision, downgrade, migrate
    from metadata.records import (
        CatalogSummary,
        ExperimentInfo,
        GroupInfo,
        ImportSummary,
        LeaseInfo,
        MetricInfo,
        NotificationInfo,
        RampInfo,
        RampRow,
        RunEvent,
        RunInfo,
        SegmentInfo,
    )
    from metadata.repository import MetadataStore

__all__ = [
    "DEFAULT_WINDOW_DAYS",
    "CatalogSummary",
    "ExperimentInfo",
    "GroupInfo",
    "ImportSummary",
    "LeaseInfo",
    "MetadataStore",
    "MetricInfo",
    "NotificationInfo",
    "Period",
    "RampInfo",
    "RampRow",
    "RunEvent",
    "RunInfo",
    "SegmentInfo",
    "aggregation_periods",
    "current_revision",
    "downgrade",
    "migrate",
    "period_at",
    "window_ms",
]

_LAZY = {
    "MetadataStore": "metadata.repository",
    "current_revision": "metadata.db",
    "downgrade": "metadata.db",
    "migrate": "metadata.db",
}


def __getattr__(name: str) -> Any:
    """Load the SQLAlchemy-backed names on first use (CLI and DAG parsing stay fast)."""
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in __all__:
        return getattr(importlib.import_module("metadata.records"), name)
    raise AttributeError(f"module 'metadata' has no attribute {name!r}")
