"""``custom``: a user's SQL or Spark function over the ``aggregated`` slice's standard views.

The slice is the ``aggregated`` one; the per-user value comes from the user's code instead
of an event type (see :mod:`metric_types.custom` for the checks and the loader).
"""

from __future__ import annotations

from metric_types.types.aggregated import Aggregated


class Custom(Aggregated):
    name = "custom"
