"""Aggregation: the per-user operator, per-user values and group totals.

The seed's operators (docs/streaming.md maps each one):

* **the per-user operator** (``user_events``, a Java process table function partitioned by
  user: :mod:`streaming.jvm`, ``UserEvents.java``), in one keyed step:

  * **event de-duplication** and the **spam cap**, in batch's order: equal ``(user_id,
    event_type, ts)`` are one event (the first to arrive wins), then of a user's events in
    one clock hour, ordered by ``(ts, event_type)``, the first ``spam_cap`` count; a late
    event that displaces a counted one retracts it;
  * **first trigger time** ``t_u``, the earliest activation per (experiment, group,
    period, user), exact whatever order activations arrive in;
  * the **activation-event join**: each counted event with ``t_u <= ts < period end``. It
    keeps the user's counted events (the seed's planned event buffer, without a time limit
    in a replay and with the state TTL in a run), so activations that arrive after their
    events lose nothing, and an earlier activation arriving late adds the user's events
    before it; a re-ramp that moves a period's end retracts the old period's rows;

  it emits ``exposure`` rows, ``counted`` rows, each exposure's first counted event per
  type (for the series) and the user's event types (``event_types``), each inserted when it
  starts to hold and deleted when it stops;
* **join-result de-duplicator / first-time-seen flag**: propensity is the number of users
  whose per-user count is positive, a ``COUNT(*)`` over the per-user rows, which exist only
  while a user has counted events;
* **numerator and denominator computers**: group sums over per-user values, per period
  (counts restart at each period: the period is part of every key);
* **15-minute buckets**: ``series_*`` streams: exposures, events and first events per
  15-minute bucket, accumulated by the series sink for the real-time plot.

Stream rows are cumulative through the end of a date ``D`` (docs/metrics.md §5): a user's
value through ``D`` needs the user's events through ``D``, so every counted event is counted
for each date from its own to the last date of its period (a ``CROSS JOIN UNNEST`` of day
offsets), and every exposure likewise from the exposure's date. Per-user values per date
then give ``n``, ``sum`` and ``sum_sq`` exactly, for counts, sums and ratios, overall and per
segment value.

Three outputs:

* ``event_types``: every event type some user has counted events of (each is a metric);
* ``totals``, ``(experiment, grp, period_start, period_end, d, segment, sv, kind, name, cnt,
  users, cnt_sq, vsum, vsq)``: group totals through day ``d``; ``kind`` is ``exposed``
  (``cnt`` users), ``type`` (``name`` an event type: events, users with one, sum of squared
  counts, sum and sum of squares of ``value``) or ``pair`` (``name`` a ratio pair: ``vsum`` =
  sum of ``x * y``);
* ``series``, ``(experiment, grp, period_start, kind, name, bucket, n)``: ``n`` new exposures
  (``kind = exposed``), events (``volume``) or first events (``propensity``) of type ``name``
  in 15-minute ``bucket``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streaming import jvm
from streaming.jobs import Sink, with_mini_batches
from streaming.parse import lit
from streaming.plan import PairSpec, SegmentSpec, StreamPlan

DAY_MS = 86_400_000
BUCKET_MS = 900_000  # 15 minutes
EXPOSURE = ("experiment", "grp", "period_start", "period_end", "user_id")
GROUP = ("experiment", "grp", "period_start", "period_end", "d")
TOTAL_COLUMNS = (
    "experiment", "grp", "period_start", "period_end", "d", "segment", "sv", "kind", "name",
    "cnt", "users", "cnt_sq", "vsum", "vsq",
)  # fmt: skip
SERIES_COLUMNS = ("experiment", "grp", "period_start", "kind", "name", "bucket", "n")
SERIES_BATCH_SIZE = 1_000_000  # records per mini-batch of the series (few keys: small state)


def user_inputs_query(events: str, activations: str, plan: StreamPlan) -> str:
    """Events and activations as one table for the per-user operator (an event has no
    ``experiment``); the segment fields travel as one array."""
    n = len(plan.segment_fields)
    segs = f"ARRAY[{', '.join(f'seg_{i}' for i in range(n))}]" if n else "CAST(NULL AS ARRAY<STRING>)"
    none = {t: f"CAST(NULL AS {t})" for t in ("STRING", "BIGINT", "DOUBLE", "ARRAY<STRING>")}
    return (
        f"SELECT user_id, event_type, ts, `value`, {segs} AS segs, {none['STRING']} AS experiment, "
        f"{none['STRING']} AS grp, {none['BIGINT']} AS period_start, "
        f"{none['BIGINT']} AS period_end FROM {events} UNION ALL "
        f"SELECT user_id, {none['STRING']}, ts, {none['DOUBLE']}, {none['ARRAY<STRING>']}, "
        f"experiment, grp, period_start, period_end FROM {activations}"
    )


def user_rows_query(inputs: str, spam_cap: int) -> str:
    """The per-user operator over ``inputs``: ``user_id, kind, ...`` (``UserEvents.java``)."""
    return (
        f"SELECT * FROM user_events(input => TABLE {inputs} PARTITION BY user_id, "
        f"cap => {spam_cap}, uid => 'user-events')"
    )


def counted_query(user_rows: str, plan: StreamPlan) -> str:
    """The counted events: each event of an exposed user inside the exposure's period."""
    segs = "".join(f", segs[{i + 1}] AS seg_{i}" for i in range(len(plan.segment_fields)))
    return (
        f"SELECT {', '.join(EXPOSURE)}, event_type, ts, `value`{segs} FROM {user_rows} "
        "WHERE kind = 'c'"
    )


def dated(source: str, ts: str, columns: str, max_days: int) -> str:
    """``columns`` of ``source`` once for each date from ``ts``'s to its period's last (``d``)."""
    offsets = "ARRAY[" + ", ".join(f"CAST({i} AS BIGINT)" for i in range(max_days)) + "]"
    last_day = f"(period_end - 1) / {DAY_MS}"
    return (
        f"SELECT {columns}, {ts} / {DAY_MS} + k AS d FROM {source} CROSS JOIN UNNEST("
        f"ARRAY_SLICE({offsets}, 1, CAST({last_day} - {ts} / {DAY_MS} + 1 AS INT))) AS O(k)"
    )


def user_values_query(counted_dates: str) -> str:
    """Per-user values per date: events and the sum of ``value`` by exposure, date and type."""
    ek = ", ".join(EXPOSURE)
    return (
        f"SELECT {ek}, d, event_type, COUNT(*) AS c, SUM(`value`) AS v FROM {counted_dates} "
        f"GROUP BY {ek}, d, event_type"
    )


def build(
    t_env: Any, source: Mapping[str, str], sink: Sink, plan: StreamPlan, max_days: int,
    series_batch_ms: int,
) -> None:
    """``source`` names ``filtered_events`` and ``filtered_activations``; ``max_days`` bounds the
    number of dates one period spans (the day offsets a record is counted for);
    ``series_batch_ms`` is how long the series' aggregations gather changes (see below)."""
    sql = t_env.execute_sql
    ek = ", ".join(EXPOSURE)
    per_user(t_env, source, sink, plan)
    sql("CREATE TEMPORARY VIEW counted_dates AS "
        + dated("counted", "ts", f"{ek}, event_type, `value`", max_days))  # fmt: skip
    sql("CREATE TEMPORARY VIEW exposure_dates AS " + dated("exposure", "t_u", ek, max_days))
    sql(f"CREATE TEMPORARY VIEW user_values AS {user_values_query('counted_dates')}")
    totals = [
        _totals("exposure_dates", "''", "'exposed'", "''", "COUNT(*)", "0", "0", "0.0", "0.0"),
        _totals("user_values", "''", "'type'", "event_type", "SUM(c)", "COUNT(*)", "SUM(c * c)",
                "SUM(v)", "SUM(v * v)", by="event_type"),
    ]  # fmt: skip
    for pair in plan.pairs:
        view = _pair_view(t_env, pair)
        totals.append(_totals(view, "''", "'pair'", lit(pair.id), "0", "0", "0", "SUM(xy)", "0.0"))
    for segment in plan.segments:
        view = _segment_view(t_env, segment, plan)
        totals += _segment_totals(view, segment, plan)
    sink("totals", " UNION ALL ".join(totals))
    # The series' keys (15-minute buckets) are spread over a whole day in every mini-batch, so
    # each mini-batch would update most of them, and the series sink (Python) would get an
    # update per bucket per mini-batch: about one record per event. Its sink writes a
    # changed series once per flush interval, so its aggregations gather changes that long.
    with with_mini_batches(t_env, series_batch_ms, SERIES_BATCH_SIZE):
        sink("series", " UNION ALL ".join(_series(t_env)))


def per_user(t_env: Any, source: Mapping[str, str], sink: Sink, plan: StreamPlan) -> None:
    """The per-user operator over the filtered topics: ``user_rows`` and ``event_types``
    published, ``exposure`` and ``counted`` as views of ``user_rows``."""
    sql = t_env.execute_sql
    events, activations = source["filtered_events"], source["filtered_activations"]
    jvm.register(t_env)
    sql(f"CREATE TEMPORARY VIEW user_inputs AS {user_inputs_query(events, activations, plan)}")
    # Read by several consumers (dates, segments, series): published, so that the operator
    # runs once (a view would be planned once per consumer).
    sink("user_rows", user_rows_query("user_inputs", plan.spam_cap))
    ek = ", ".join(EXPOSURE)
    sql(f"CREATE TEMPORARY VIEW exposure AS SELECT {ek}, t_u FROM user_rows WHERE kind = 'x'")
    sql(f"CREATE TEMPORARY VIEW counted AS {counted_query('user_rows', plan)}")
    sink("event_types", "SELECT event_type FROM user_rows WHERE kind = 't' GROUP BY event_type")


def _totals(
    view: str, segment: str, kind: str, name: str, cnt: str, users: str, cnt_sq: str,
    vsum: str, vsq: str, *, by: str = "", sv: str = "''", join: str = "", prefix: str = "",
) -> str:
    """One ``group_totals`` query: group sums of ``view`` (optionally joined) by group and date."""
    keys = [f"{prefix}{c}" for c in GROUP] + ([by] if by else []) + ([sv] if sv != "''" else [])
    return (
        f"SELECT {', '.join(f'{prefix}{c}' for c in GROUP)}, {segment} AS segment, "
        f"CAST({sv} AS STRING) AS sv, {kind} AS kind, CAST({name} AS STRING) AS name, "
        f"CAST({cnt} AS BIGINT) AS cnt, CAST({users} AS BIGINT) AS users, "
        f"CAST({cnt_sq} AS BIGINT) AS cnt_sq, CAST({vsum} AS DOUBLE) AS vsum, "
        f"CAST({vsq} AS DOUBLE) AS vsq FROM {view} {join} GROUP BY {', '.join(keys)}"
    )


def _value(alias: str, statistic: str) -> str:
    return f"{alias}.v" if statistic == "sum" else f"CAST({alias}.c AS DOUBLE)"


def _in(experiments: tuple[str, ...], column: str = "experiment") -> str:
    return f"{column} IN ({', '.join(lit(e) for e in experiments)})"


def _pair_view(t_env: Any, pair: PairSpec) -> str:
    """Per user and date, ``x * y`` of a ratio pair (users without both types add zero)."""
    on = " AND ".join(f"a.{c} = b.{c}" for c in (*EXPOSURE, "d"))
    view = f"pair_{pair.id}"
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW {view} AS SELECT "
        + ", ".join(f"a.{c}" for c in (*EXPOSURE, "d"))
        + f", {_value('a', pair.numerator.statistic)} * {_value('b', pair.denominator.statistic)}"
        f" AS xy FROM user_values AS a JOIN user_values AS b ON {on} "
        f"WHERE a.event_type = {lit(pair.numerator.event_type)} "
        f"AND b.event_type = {lit(pair.denominator.event_type)} AND {_in(pair.experiments, 'a.experiment')}"
    )
    return view


def _segment_view(t_env: Any, segment: SegmentSpec, plan: StreamPlan) -> str:
    """Per exposure and date, the user's value of the segment (docs/metrics.md §7).

    The value is the field's value on the user's first counted event by ``(ts, event_type)``
    that has the field, once that event is inside the date; ``""`` before (or without one).
    The first event is ``MIN`` of a sortable text key (15-digit ts, type, NUL, value):
    a ``MIN`` with retraction keeps every key's count, cheaper than a Top-1.
    """
    first, view = f"first_{segment.name}", f"segment_{segment.name}"
    key = f"LPAD(CAST(ts AS STRING), 15, '0') || event_type || CHR(0) || {segment.column}"
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW {first} AS SELECT {', '.join(EXPOSURE)}, MIN({key}) AS k "
        f"FROM counted WHERE {segment.column} IS NOT NULL AND {_in(segment.experiments)} "
        f"GROUP BY {', '.join(EXPOSURE)}"
    )
    on = " AND ".join(f"x.{c} = f.{c}" for c in EXPOSURE)
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW {view} AS SELECT "
        + ", ".join(f"x.{c}" for c in (*EXPOSURE, "d"))
        + ", CASE WHEN f.k IS NOT NULL AND "
        f"CAST(SUBSTRING(f.k FROM 1 FOR 15) AS BIGINT) / {DAY_MS} <= x.d "
        "THEN SUBSTRING(f.k FROM POSITION(CHR(0) IN f.k) + 1) ELSE '' END AS sv "
        f"FROM exposure_dates AS x LEFT JOIN {first} AS f ON {on} "
        f"WHERE {_in(segment.experiments, 'x.experiment')}"
    )
    return view


def _segment_totals(view: str, segment: SegmentSpec, plan: StreamPlan) -> list[str]:
    name = lit(segment.name)
    out = [_totals(view, name, "'exposed'", "''", "COUNT(*)", "0", "0", "0.0", "0.0", sv="sv")]
    on = " AND ".join(f"u.{c} = s.{c}" for c in (*EXPOSURE, "d"))
    out.append(
        _totals("user_values AS u", name, "'type'", "u.event_type", "SUM(u.c)", "COUNT(*)",
                "SUM(u.c * u.c)", "SUM(u.v)", "SUM(u.v * u.v)", by="u.event_type", sv="s.sv",
                join=f"JOIN {view} AS s ON {on}", prefix="u.")
    )  # fmt: skip
    for pair in plan.pairs:
        if set(pair.experiments) & set(segment.experiments):
            on_pair = " AND ".join(f"p.{c} = s.{c}" for c in (*EXPOSURE, "d"))
            out.append(
                _totals(f"pair_{pair.id} AS p", name, "'pair'", lit(pair.id), "0", "0", "0",
                        "SUM(p.xy)", "0.0", sv="s.sv", join=f"JOIN {view} AS s ON {on_pair}",
                        prefix="p.")
            )  # fmt: skip
    return out


def _series(t_env: Any) -> list[str]:
    """Increments per 15-minute bucket: exposures, counted events, users' first events."""
    group = "experiment, grp, period_start"
    t_env.execute_sql(
        f"CREATE TEMPORARY VIEW first_counted AS SELECT {', '.join(EXPOSURE)}, event_type, ts "
        "FROM user_rows WHERE kind = 'f'"  # the per-user operator's first event per type
    )
    parts = [
        f"SELECT {group}, 'exposed' AS kind, '' AS name, t_u / {BUCKET_MS} AS bucket, "
        f"COUNT(*) AS n FROM exposure GROUP BY {group}, t_u / {BUCKET_MS}",
        f"SELECT {group}, 'volume' AS kind, event_type AS name, ts / {BUCKET_MS} AS bucket, "
        f"COUNT(*) AS n FROM counted GROUP BY {group}, event_type, ts / {BUCKET_MS}",
        f"SELECT {group}, 'propensity' AS kind, event_type AS name, ts / {BUCKET_MS} AS bucket, "
        f"COUNT(*) AS n FROM first_counted GROUP BY {group}, event_type, ts / {BUCKET_MS}",
    ]
    return parts
