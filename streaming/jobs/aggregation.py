"""Aggregation: the per-user operator, then group totals and series from its changes.

The seed's operators (docs/streaming.md maps each one):

* **the per-user operator** (a Java keyed function, the stream keyed by user:
  :mod:`streaming.jvm`, ``UserEvents.java``), in one keyed step:

  * **event de-duplication** and the **spam cap**, in batch's order: equal ``(user_id,
    event_type, ts)`` are one event (the first to arrive wins), then of a user's events in
    one clock hour, ordered by ``(ts, event_type)``, the first ``spam_cap`` count; a late
    event that displaces a counted one takes it back;
  * **first trigger time** ``t_u``, the earliest activation per (experiment, group,
    period, user), exact whatever order activations arrive in;
  * the **activation-event join**: each counted event with ``t_u <= ts < period end``. It
    keeps the user's counted events (the seed's planned event buffer, without a time limit
    in a replay and with the state TTL in a run), so activations that arrive after their
    events lose nothing, and an earlier activation arriving late adds the user's events
    before it; a re-ramp that moves a period's end takes the old period's values back;
  * the **join-result de-duplicator / first-time-seen flag** and the **numerator and
    denominator computers** per user: the user's values per exposure and day (events, the
    sum of ``value``, ``users`` 1 once the user has an event of the type, ratio pairs'
    ``x * y``, each overall and under the user's segment value of the day), kept as counts
    per day (counts restart at each period: the period is part of every key);
  * **users in two groups**, batch's ``multi`` flag day by day (``OtherGroups.java``): on a
    day the user is also exposed to another group of the experiment in its slice, the
    exposure counts under ``multi``, and an experiment with ``analysis.multiple_groups:
    exclude`` leaves its values out that day; a new or moved exposure re-counts the user's
    other exposures of the experiment;

  it emits, insert-only, every *change* of a user's values: the values after an input
  minus those before, as day-to-day increments (``Contributions.java``);
* **group totals**: ``SUM`` of the changes per group, key and day (first in the operator's
  own thread, ``PreSums.java``, then over all users in one phase), then running sums over
  the days of the period: a user's values
  through a date ``D`` are the sum of their increments up to ``D`` (docs/metrics.md §5),
  and so are the group's;
* **15-minute buckets**: the operator's ``series_*`` changes: exposures, events and first
  events per 15-minute bucket, summed per bucket for the series sink (the real-time plot).

Three outputs:

* ``event_types``: every event type some user has counted events of (each is a metric);
* ``totals``, ``(experiment, grp, period_start, period_end, d, segment, sv, kind, name, cnt,
  users, cnt_sq, vsum, vsq, nonzero)``: group totals through day ``d``; ``kind`` is
  ``exposed`` (``cnt`` users), ``type`` (``name`` an event type: events, users with one, sum
  of squared counts, sum and sum of squares of ``value``), ``pair`` (``name`` a ratio pair:
  ``vsum`` = sum of ``x * y``), ``multi`` (``cnt`` users also exposed to another group of
  the experiment, counted before any exclusion) or ``interval`` (``cnt`` users whose ``t_u``
  fell in the allocation interval starting at ``name``: the SRM check's,
  :mod:`streaming.health`), the last two for whole groups only, or ``pre`` and ``pre_xy``
  (``name`` an event type: the CUPED covariate's count, squared count, sum and squared sum,
  and its products with the user's events' count and sum: ``Contributions.java``);
  ``nonzero`` is the number of
  users whose ``vsum`` term is not zero (when it is 0 the sums are exactly 0, whatever
  round-off the additions and take-backs left: :mod:`streaming.rows`);
* ``series``, ``(experiment, grp, period_start, kind, name, bucket, n)``: ``n`` exposures
  (``kind = series_exposed``), events (``series_volume``) or first events
  (``series_propensity``) of type ``name`` in 15-minute ``bucket``, published as upserts by
  all but ``n``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streaming import jvm
from streaming.jobs import Sink, planned_with, unset_only, with_mini_batches
from streaming.parse import lit
from streaming.plan import StreamPlan
from udf.errors import EngineError

DAY_MS = 86_400_000
KEY = ("experiment", "grp", "period_start", "period_end", "d", "segment", "sv", "kind", "name")
STATS = ("cnt", "users", "cnt_sq", "vsum", "vsq", "nonzero")
TOTAL_COLUMNS = (*KEY, *STATS)
# (the rest: event_type, series_*: UserEvents.java)
TOTAL_KINDS = ("exposed", "type", "pair", "multi", "interval", "pre", "pre_xy")
EVENT_TYPE = "event_type"
SERIES_PREFIX = "series_"  # the series' kinds: series_exposed, _volume, _propensity
SERIES_COLUMNS = ("experiment", "grp", "period_start", "kind", "name", "bucket", "n")
SERIES_KEY = SERIES_COLUMNS[:-1]
SERIES_BATCH_SIZE = 1_000_000_000  # its latency closes its mini-batches (buffers: one per key)
AGG_PHASES = "table.optimizer.agg-phase-strategy"


def _one_phase(t_env: Any) -> dict[str, str]:
    """How the sums after the operator's own (``PreSums.java``) are planned: in one phase, no
    second local sum of its sums; unless ``stream.flink_conf`` sets the strategy, which is
    then kept."""
    return unset_only(t_env.get_config(), {AGG_PHASES: "ONE_PHASE"})


def operator_plan(plan: StreamPlan) -> str:
    """The segments, the ratio pairs, the experiments that exclude users in two groups and
    those with CUPED, in the per-user operator's terms (``OperatorPlan.java``)."""
    lines: list[tuple[str, ...]] = [("F", str(len(plan.segment_fields)))]
    lines += [
        ("S", s.name, str(plan.segment_fields.index(s.field)), *s.experiments)
        for s in plan.segments
    ]  # fmt: skip
    lines += [
        ("P", p.id, p.numerator.event_type, p.numerator.statistic, p.denominator.event_type,
         p.denominator.statistic, *p.experiments)
        for p in plan.pairs
    ]  # fmt: skip
    if plan.excluding:
        lines.append(("X", *plan.excluding))
    lines += [("C", e, str(ms)) for e, ms in sorted(plan.pre_windows.items())]
    for line in lines:
        if any("\t" in f or "\n" in f for f in line):
            raise ValueError(f"a name holds a tab or a line break: {line!r}")
    return "\n".join("\t".join(line) for line in lines)


def user_inputs_query(events: str, activations: str, plan: StreamPlan) -> str:
    """Events and activations as one table for the per-user operator (an event has no
    ``experiment``); the segment fields travel as one array."""
    n = len(plan.segment_fields)
    segs = (
        f"ARRAY[{', '.join(f'seg_{i}' for i in range(n))}]" if n else "CAST(NULL AS ARRAY<STRING>)"
    )
    none = {t: f"CAST(NULL AS {t})" for t in ("STRING", "BIGINT", "DOUBLE", "ARRAY<STRING>")}
    return (
        f"SELECT user_id, event_type, ts, `value`, {segs} AS segs, {none['STRING']} AS experiment, "
        f"{none['STRING']} AS grp, {none['BIGINT']} AS period_start, "
        f"{none['BIGINT']} AS period_end, {none['BIGINT']} AS interval_start FROM {events} "
        f"UNION ALL SELECT user_id, {none['STRING']}, ts, {none['DOUBLE']}, "
        f"{none['ARRAY<STRING>']}, experiment, grp, period_start, period_end, interval_start "
        f"FROM {activations}"
    )


def user_changes(t_env: Any, inputs: Any, plan: StreamPlan, state_ttl_ms: int | None = None) -> Any:
    """The per-user operator (``UserEvents.java``) over the table ``inputs`` (the columns of
    :func:`user_inputs_query`, a changelog), keyed by its ``user_id``: a Java DataStream of
    its changes, ``TOTAL_COLUMNS`` as Flink's internal rows. A user's state lives
    ``state_ttl_ms`` after its last write (None: for ever)."""
    from pyflink.java_gateway import get_gateway

    j_table = inputs._j_table
    user_type = j_table.getResolvedSchema().getColumnDataTypes().get(0)
    key_type = get_gateway().jvm.org.apache.flink.table.runtime.typeutils.ExternalTypeInfo.of(
        user_type
    )
    function = jvm.new_instance(t_env, "udf.streaming.UserEvents", str(plan.spam_cap),
                                operator_plan(plan), str(state_ttl_ms or 0))  # fmt: skip
    keyed = t_env._j_tenv.toChangelogStream(j_table).keyBy(
        jvm.new_instance(t_env, "udf.streaming.UserEvents$User"), key_type
    )
    return keyed.process(function, function.outputType()).name("user events").uid("user-values")


def summed_query(source: str) -> str:
    """``source``'s statistics summed per ``KEY``."""
    sums = ", ".join(f"SUM({c}) AS {c}" for c in STATS)
    return f"SELECT {', '.join(KEY)}, {sums} FROM {source} GROUP BY {', '.join(KEY)}"


def through_days(source: str, max_days: int) -> str:
    """Each row of ``source`` once for each day from its ``d`` to its period's last day."""
    offsets = "ARRAY[" + ", ".join(f"CAST({i} AS BIGINT)" for i in range(max_days)) + "]"
    last_day = f"(period_end - 1) / {DAY_MS}"
    columns = ", ".join(c for c in TOTAL_COLUMNS if c != "d")
    return (
        f"SELECT {columns}, d + k AS d FROM {source} CROSS JOIN UNNEST("
        f"ARRAY_SLICE({offsets}, 1, CAST({last_day} - d + 1 AS INT))) AS O(k)"
    )


def build(
    t_env: Any,
    source: Mapping[str, str],
    sink: Sink,
    plan: StreamPlan,
    max_days: int,
    series_batch_ms: int,
    state_ttl_ms: int | None = None,
) -> None:
    """``source`` names ``filtered_events`` and ``filtered_activations``; ``max_days`` bounds the
    number of dates one period spans (the days a change is counted for); ``series_batch_ms``
    is how long the series' aggregation gathers changes (see below); the per-user operator
    keeps a user's state ``state_ttl_ms`` after its last write (None: for ever)."""
    per_user(t_env, source, sink, plan, state_ttl_ms)
    kinds = ", ".join(lit(k) for k in TOTAL_KINDS)
    days = through_days(f"(SELECT * FROM changes WHERE kind IN ({kinds}))", max_days)
    sink("totals", summed_query(f"({days})"), one_reader=True)  # the results sink's
    # The series' keys (15-minute buckets) are spread over a whole day in every mini-batch, so
    # each mini-batch would update most of them, and the series sink (Python) would get an
    # update per bucket per mini-batch: about one record per event. Its sink writes a
    # changed series once per flush interval, so its aggregation gathers changes that long
    # (checkpoints still close a mini-batch). Its kinds are the most numerous changes (one per
    # counted event), so it sums them from the operator's insert-only output, not from
    # ``changes``, and goes to its sink as upserts: an update is one record.
    with (
        with_mini_batches(t_env, series_batch_ms, SERIES_BATCH_SIZE),
        planned_with(t_env, _one_phase(t_env)),
    ):
        sink("series",
             f"SELECT {', '.join(SERIES_KEY)}, SUM(n) AS n FROM series_sums "
             f"GROUP BY {', '.join(SERIES_KEY)}",
             key=SERIES_KEY)  # fmt: skip


def per_user(
    t_env: Any,
    source: Mapping[str, str],
    sink: Sink,
    plan: StreamPlan,
    state_ttl_ms: int | None = None,
) -> None:
    """The per-user operator over the filtered topics: its changes summed per key and day
    (``changes``) and the event types users have counted events of (``event_types``)."""
    events, activations = source["filtered_events"], source["filtered_activations"]
    # The operator's inputs are planned without mini-batches: the activations' join with the
    # periods (filter_activations' plain view, planned here with its reader) would be a
    # mini-batch join, which emits when a mini-batch watermark has come from both inputs, and
    # the periods' side sends none between its rare changes: it emitted only at checkpoints,
    # and a run's freshness was the checkpoint interval plus 3 s (docs/benchmarks.md,
    # "2026-12-05 (later)"). They are planned when the operator takes them as a DataStream.
    latency_ms, size = _mini_batches(t_env)
    with planned_with(t_env, {"table.exec.mini-batch.enabled": "false"}):
        sink("user_inputs", user_inputs_query(events, activations, plan), one_reader=True)
        changes = user_changes(t_env, t_env.from_path("user_inputs"), plan, state_ttl_ms)
    # Summed per key in the operator's own thread (``PreSums.java``: SQL's local sum of a
    # two-phase SUM, for the totals and the series at once, without the projection, the
    # filters on ``kind`` and the two mini-batch bundles it replaced: docs/benchmarks.md,
    # "2026-12-05 (night)"), then over all users by SQL in one phase.
    totals, series = pre_summed(t_env, changes, latency_ms, size)
    t_env.create_temporary_view("user_sums", totals)  # the totals' and event types' kinds
    t_env.create_temporary_view("series_sums", series)  # SERIES_COLUMNS: series_* kinds
    # Read by the totals and the event types.
    with planned_with(t_env, _one_phase(t_env)):
        sink("changes", summed_query("user_sums"))
    sink("event_types",
         f"SELECT name AS event_type FROM changes WHERE kind = {lit(EVENT_TYPE)} AND cnt > 0")  # fmt: skip


def pre_summed(t_env: Any, changes: Any, latency_ms: int, size: int) -> tuple[Any, Any]:
    """The per-user operator's ``changes`` (a Java DataStream of ``TOTAL_COLUMNS`` as internal
    rows: :func:`user_changes`) summed per key in its thread (``PreSums.java``): the totals'
    and event types' kinds (``TOTAL_COLUMNS``) and the series' (``SERIES_COLUMNS``), each a
    table of sums sent every ``latency_ms`` or when ``size`` keys are held, and before every
    checkpoint."""
    from pyflink.table import Table

    operator = jvm.new_instance(t_env, "udf.streaming.PreSums", str(latency_ms), str(size))
    sums = changes.transform("pre-sums", operator.totalsType(), operator).uid("pre-sums")
    series = sums.getSideOutput(operator.seriesTag())
    return (Table(t_env._j_tenv.fromDataStream(sums), t_env),
            Table(t_env._j_tenv.fromDataStream(series), t_env))  # fmt: skip


def _mini_batches(t_env: Any) -> tuple[int, int]:
    """The table configuration's mini-batch latency (milliseconds) and size."""
    from pyflink.java_gateway import get_gateway

    config = t_env.get_config()
    latency = config.get("table.exec.mini-batch.allow-latency", None)
    size = config.get("table.exec.mini-batch.size", None)
    if latency is None or size is None:
        raise EngineError("the per-user stage needs table.exec.mini-batch.allow-latency and .size")
    millis = get_gateway().jvm.org.apache.flink.util.TimeUtils.parseDuration(latency).toMillis()
    return millis, int(size)
