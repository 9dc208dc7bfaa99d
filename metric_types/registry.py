"""The one registry of metric types: name → class, imported lazily, duplicates refused."""

from __future__ import annotations

from importlib import import_module

from metric_types.base import MetricType
from udf.errors import InputError
from udf.vocabulary import METRIC_TYPES

_TYPES: dict[str, str] = {
    "aggregated": "metric_types.types.aggregated:Aggregated",
    "calendar_day": "metric_types.types.calendar_day:CalendarDay",
    "days_in": "metric_types.types.days_in:DaysIn",
    "custom": "metric_types.types.custom:Custom",
}
NAMES: tuple[str, ...] = METRIC_TYPES  # _TYPES has one entry for each (a test checks it)


def get(name: str) -> MetricType:
    """The metric type called ``name``."""
    try:
        module_name, class_name = _TYPES[name].split(":")
    except KeyError:
        raise InputError(
            f"unknown metric type {name!r}; expected one of {', '.join(NAMES)}"
        ) from None
    cls = getattr(import_module(module_name), class_name)
    if cls.name != name:
        raise InputError(f"metric type {name!r} is registered to {cls.__name__} ({cls.name!r})")
    return cls()
