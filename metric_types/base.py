"""What a metric type is: which periods, users and events make up its slice of a day.

Every type shares the contract §3 (periods, exposure, clean and counted events: see
:mod:`metric_types.semantics`) and differs only in its slice (docs/metrics.md §5). A type
module is therefore small: it narrows the exposed users and the counted events of a day,
and may add a ``day_in`` column (0 unless the type slices by day since exposure).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, ClassVar

from metadata.periods import DAY_MS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from metric_types.plan import MetricPlan


@dataclass(frozen=True)
class Day:
    """One UTC calendar day, ``[start, end)`` in epoch milliseconds."""

    date: date

    @property
    def start(self) -> int:
        moment = datetime(self.date.year, self.date.month, self.date.day, tzinfo=UTC)
        return int(moment.timestamp()) * 1000

    @property
    def end(self) -> int:
        return self.start + DAY_MS


@dataclass(frozen=True)
class PeriodRow:
    experiment: str
    group: str
    start: int
    end: int


class MetricType(ABC):
    """One metric type. Subclasses set :attr:`name` and narrow the day's slice."""

    name: ClassVar[str]

    def lookback_ms(self, metrics: Sequence[MetricPlan]) -> int:
        """How long before the day a period may have ended and still be in the slice."""
        return 0

    def in_slice(self, period: PeriodRow, day: Day, metrics: Sequence[MetricPlan]) -> bool:
        """Whether ``period`` can have users in the day's slice (default: active on the day)."""
        return period.start < day.end and period.end > day.start - self.lookback_ms(metrics)

    def events_from(self, day: Day, first_period_start: int) -> int:
        """The earliest event time the slice can count."""
        return first_period_start

    @abstractmethod
    def users(self, exposures: DataFrame, day: Day, metrics: Sequence[MetricPlan]) -> DataFrame:
        """The slice's users: ``exposures`` narrowed, with a ``day_in`` column."""

    @abstractmethod
    def events(self, counted: DataFrame, day: Day, metrics: Sequence[MetricPlan]) -> DataFrame:
        """The slice's counted events: ``counted`` narrowed, with a ``day_in`` column."""
