"""The interface every results store implements, and the checks they share.

A store holds :class:`~results.schema.ResultRow` rows and changes them in two ways.
:meth:`ResultsStore.replace` rewrites one *slice* (a batch computation's output): it deletes
every row of the slice and writes the new ones as one atomic step, so a rerun replaces,
never adds to, what an earlier run wrote (the contract §4). :meth:`ResultsStore.upsert`
writes rows by key (a stream's running results): each row replaces the stored row with the
same key or is added, and every other row stays as it was. Either way a reader sees all of a
call's rows or none of them. Rows are checked the same way before any store sees them, so a
row one store accepts is never refused by the other.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import date
from operator import attrgetter
from types import TracebackType
from typing import Self

from results.schema import FLOAT_COLUMNS, SOURCES, ResultRow, Slice
from udf.errors import InputError

# The longest value each text column may hold (the embedded store's VARCHAR lengths).
NAME_LENGTH = 128
TEXT_LIMITS: dict[str, int] = {
    "experiment": NAME_LENGTH,
    "group": NAME_LENGTH,
    "metric": NAME_LENGTH,
    "segment": NAME_LENGTH,
    "metric_type": 32,
    "date": 10,
    "segment_value": 255,
    "status": 64,
    "seq_decision": 32,
    "health": 255,
    "source": 8,
}


class ResultsStore(ABC):
    """Where results live: the embedded SQL store by default, Druid in production."""

    @abstractmethod
    def replace(self, slice: Slice, rows: Sequence[ResultRow]) -> int:
        """Delete every row of ``slice`` and write ``rows`` instead, atomically.

        Every row must belong to the slice and no key may repeat (:func:`checked_rows`);
        an empty ``rows`` deletes the slice. Returns the number of rows written.
        """

    @abstractmethod
    def upsert(self, rows: Sequence[ResultRow]) -> int:
        """Write ``rows`` by key, atomically: each replaces the stored row with its key, if any.

        Rows of other keys are untouched, so replaying a call changes nothing and a batch
        slice of the same day keeps its rows. No key may repeat within a call
        (:func:`checked_upsert`). Returns the number of rows written.
        """

    @abstractmethod
    def read(
        self,
        *,
        source: str | None = None,
        metric_type: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        metrics: Sequence[str] | None = None,
        experiments: Sequence[str] | None = None,
    ) -> list[ResultRow]:
        """The rows matching every given filter (dates inclusive), sorted by ``KEY``."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store is not used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def checked_rows(slice: Slice, rows: Iterable[ResultRow]) -> list[ResultRow]:
    """``rows`` after :meth:`Slice.check`, refusing text too long and non-finite numbers.

    NaN and infinities have no portable representation (SQLite stores NaN as NULL, MariaDB
    refuses it, JSON has no spelling for it): a degenerate comparison is a null with a
    ``status``, never NaN.
    """
    return _checked_values(slice.check(rows))


def checked_upsert(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """``rows`` for :meth:`ResultsStore.upsert`, checked as :func:`checked_rows` checks a
    slice's: a known source, a ``YYYY-MM-DD`` date, no key twice, the values' limits."""
    out, seen = [], set()
    for row in rows:
        if row.source not in SOURCES:
            raise InputError(f"row {row.key()}: unknown results source {row.source!r}")
        if not _is_day(row.date):
            raise InputError(f"row {row.key()}: date {row.date!r} is not a YYYY-MM-DD day")
        if row.key() in seen:
            raise InputError(f"row {row.key()} appears twice in one upsert")
        seen.add(row.key())
        out.append(row)
    return _checked_values(out)


def _is_day(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


_texts_of = attrgetter(*TEXT_LIMITS)
_floats_of = attrgetter(*sorted(FLOAT_COLUMNS))
_LIMITS = tuple(TEXT_LIMITS.values())


def _checked_values(rows: list[ResultRow]) -> list[ResultRow]:
    for row in rows:
        if any(len(v) > limit for v, limit in zip(_texts_of(row), _LIMITS, strict=True)):
            for name, limit in TEXT_LIMITS.items():
                if len(getattr(row, name)) > limit:
                    raise InputError(f"row {row.key()}: {name} is longer than {limit} characters")
        # A sum of finite numbers is finite unless it overflows: one sum per row, and the
        # columns one by one only when it is not finite (a NaN, an infinity, or an overflow).
        if not math.isfinite(sum(filter(None, _floats_of(row)))):
            for name in sorted(FLOAT_COLUMNS):
                value = getattr(row, name)
                if value is not None and not math.isfinite(value):
                    raise InputError(f"row {row.key()}: {name} is {value}, not a finite number")
    return rows


def sort_rows(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """Rows in ``KEY`` order, the same in every store whatever the database's collation."""
    return sorted(rows, key=ResultRow.key)
