"""Run one batch: a metric type, some dates, some metrics (and experiments), one shared scan.

(Being written: the signature below is the interface the framework and the tests use.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from udf.home import Home
from udf.settings import Settings


@dataclass(frozen=True)
class ComputeReport:
    metric_type: str
    dates: tuple[date, ...]
    metrics: tuple[str, ...]
    experiments: tuple[str, ...] | None
    rows: int
    seconds: float


def compute(
    home: Home,
    metric_type: str,
    dates: Sequence[date],
    *,
    metrics: Sequence[str] | None = None,
    experiments: Sequence[str] | None = None,
    settings: Settings | None = None,
) -> ComputeReport:
    """Compute ``metrics`` (default: all of the type) for each date and replace their slices."""
    raise NotImplementedError
