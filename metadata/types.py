"""Column types that behave the same on SQLite, PostgreSQL and MySQL/MariaDB.

Only PostgreSQL stores a time zone with a timestamp; MySQL/MariaDB and SQLite keep naive
values (MySQL's ``DATETIME`` also drops microseconds unless asked for ``DATETIME(6)``).
:class:`UTCDateTime` makes the difference invisible: it accepts only aware datetimes,
stores UTC (naive where the backend is naive) and always hands back aware UTC values,
so lease expiry and run durations compare correctly whatever the backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_NAIVE_BACKENDS = frozenset({"mysql", "mariadb", "sqlite"})


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the metadata store keeps aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name in _NAIVE_BACKENDS else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The store's clock: aware UTC now."""
    return datetime.now(UTC)
