"""The 15-minute series for the real-time plot: a table of its own beside the results.

One row per (experiment, group, event type, period start, 15-minute bucket) with the
period's cumulative numbers through the bucket's end: users exposed, events (volume) and
users with at least one (propensity), as the seed's numerator and denominator computers
keep them. It is not a results row (no ``n``/``sum_sq``, no comparison): it shows how a
period's counts grow within its days. The table lives in the embedded results database
(``settings.results.url``, default ``<home>/results.db``), also when results go to Druid.
Each write replaces the rows of one (experiment, group, period) in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from metadata.db import create_db_engine

BUCKET_MS = 900_000

metadata = sa.MetaData()
series = sa.Table(
    "stream_series",
    metadata,
    sa.Column("experiment", sa.String(128), nullable=False),
    sa.Column("group", sa.String(128), nullable=False),
    sa.Column("event_type", sa.String(128), nullable=False),
    sa.Column("period_start", sa.BigInteger, nullable=False),
    sa.Column("bucket_start", sa.BigInteger, nullable=False),
    sa.Column("exposed", sa.BigInteger, nullable=False),
    sa.Column("volume", sa.BigInteger, nullable=False),
    sa.Column("propensity", sa.BigInteger, nullable=False),
    sa.Column("computed_at", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("experiment", "group", "period_start", "event_type", "bucket_start"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)


@dataclass(frozen=True)
class SeriesPoint:
    event_type: str
    bucket_start: int
    exposed: int
    volume: int
    propensity: int


def cumulative(increments: dict[tuple[str, str, int], int]) -> list[SeriesPoint]:
    """Points from per-bucket increments ``(kind, event type, bucket) -> n``.

    ``kind`` is ``exposed`` (event type ``""``), ``volume`` or ``propensity``. A point is made
    for every bucket where one of an event type's three numbers changes. An increment of 0
    changes nothing and makes no point: whether a bucket's count was added and taken back
    (a late activation moving a user's first trigger time; a displaced event) or never
    touched depends on the order records arrived in, and the stored series must not.
    """
    increments = {key: n for key, n in increments.items() if n != 0}
    types = sorted({name for kind, name, _ in increments if kind != "exposed"})
    exposed = {b: n for (kind, _, b), n in increments.items() if kind == "exposed"}
    points = []
    for event_type in types:
        volume = {b: n for (k, t, b), n in increments.items() if k == "volume" and t == event_type}
        users = {
            b: n for (k, t, b), n in increments.items() if k == "propensity" and t == event_type
        }
        totals = [0, 0, 0]
        for b in sorted({*exposed, *volume, *users}):
            totals[0] += exposed.get(b, 0)
            totals[1] += volume.get(b, 0)
            totals[2] += users.get(b, 0)
            points.append(SeriesPoint(event_type, b * BUCKET_MS, *totals))
    return points


class SeriesStore:
    def __init__(self, url: str):
        self._engine = create_db_engine(url)
        metadata.create_all(self._engine)

    def replace(
        self, experiment: str, group: str, period_start: int, points: Sequence[SeriesPoint],
        computed_at: int,
    ) -> int:  # fmt: skip
        c = series.c
        rows = [
            {"experiment": experiment, "group": group, "period_start": period_start,
             "computed_at": computed_at, **p.__dict__}
            for p in points
        ]  # fmt: skip
        with self._engine.begin() as conn:
            conn.execute(
                series.delete().where(
                    c.experiment == experiment, c.group == group, c.period_start == period_start
                )
            )
            if rows:
                conn.execute(series.insert(), rows)
        return len(rows)

    def read(self, experiment: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(series).order_by(*series.primary_key.columns)
        if experiment is not None:
            query = query.where(series.c.experiment == experiment)
        with self._engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def close(self) -> None:
        self._engine.dispose()
