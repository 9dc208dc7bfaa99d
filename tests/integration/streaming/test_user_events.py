"""The per-user operator (``UserEvents.java``) on hand-made inputs: each rule of
docs/metrics.md §1-5 it applies.

The operator emits changes of group totals (insert-only); :func:`run` adds them up per key
and day and takes running sums over the period's days, which gives the totals through each
day. The expected totals come from the state each test writes down from the rules (the
exposures with their ``t_u`` and the counted events), through :func:`expected`, a direct
computation of every user's values per day: the operator's code is not used for it. The
replay tests check the operator against batch on a generated workload; these pin the cases
one at a time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pytest

pytestmark = [pytest.mark.flink]

H = 3_600_000
DAY = 24 * H
BUCKET = 900_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00Z: a clock hour's and a day's start
P0, P1 = T0 - DAY, T0 + 2 * DAY  # a period around it: three days
CAP = 2
COLUMNS = ("user_id", "event_type", "ts", "value", "segs", "experiment", "grp",
           "period_start", "period_end", "interval_start")  # fmt: skip
# One segment (the events' first segment field) and three ratio pairs, for experiment "exp".
PAIRS = {"p0": ("click", "count", "view", "sum"), "p1": ("a", "sum", "b", "count"),
         "p2": ("a", "count", "c", "count")}  # fmt: skip


def event(user: int, event_type: str, ts: int, value: float = 1.0, seg: str | None = None) -> tuple:
    return ("+I", (user, event_type, ts, value, [seg], None, None, None, None, None))


def activation(
    user: int,
    ts: int,
    kind: str = "+I",
    end: int = P1,
    interval: int = P0,
    grp: str = "g",
    start: int = P0,
) -> tuple:
    """An activation of group ``grp``'s period ``[start, end)``, in the allocation interval
    from ``interval``."""
    return (kind, (user, None, ts, None, None, "exp", grp, start, end, interval))


def plan(analysis: dict | None = None) -> Any:
    from metric_types.plan import Value
    from streaming.plan import PairSpec, SegmentSpec, StreamPlan

    return StreamPlan(
        metrics=(), controls=frozenset(), analysis=analysis or {},
        experiment_segments={"exp": ("seg",)},
        taken_names=frozenset(), spam_cap=CAP,
        segments=(SegmentSpec("seg", "country", "seg_0", ("exp",)),),
        pairs=tuple(PairSpec(i, Value(n, ns), Value(d, ds), ("exp",))
                    for i, (n, ns, d, ds) in PAIRS.items()),
    )  # fmt: skip


def changes_of(t_env: Any, state_ttl_ms: int | None = None, analysis: dict | None = None) -> Any:
    """The operator's changes over the view ``user_inputs``, as a table."""
    from pyflink.table import Table

    from streaming.jobs.aggregation import user_changes

    stream = user_changes(t_env, t_env.from_path("user_inputs"), plan(analysis), state_ttl_ms)
    return Table(t_env._j_tenv.fromDataStream(stream), t_env)


@dataclass(frozen=True)
class Outcome:
    totals: dict[tuple, tuple]  # (segment, sv, kind, name, end, day) -> TOTAL_COLUMNS' stats
    series: Counter  # (kind, name, bucket) -> n
    event_types: set  # the types with counted events
    kinds: set  # the row kinds of the operator's output


def changes(stream_env: Any, inputs: list[tuple], analysis: dict | None = None) -> list:
    """The operator's changes over ``inputs`` in this order (one subtask, so the order holds),
    with the experiment's ``analysis`` settings."""
    from pyflink.common import Row
    from pyflink.common.typeinfo import Types
    from pyflink.common.types import RowKind

    made = stream_env()
    env, t_env = made.env, made.t_env
    kinds = {"+I": RowKind.INSERT, "-D": RowKind.DELETE, "-U": RowKind.UPDATE_BEFORE,
             "+U": RowKind.UPDATE_AFTER}  # fmt: skip
    rows = []
    for kind, values in inputs:
        row = Row(*values)
        row.set_row_kind(kinds[kind])
        rows.append(row)
    types = Types.ROW_NAMED(
        list(COLUMNS),
        [Types.LONG(), Types.STRING(), Types.LONG(), Types.DOUBLE(),
         Types.BASIC_ARRAY(Types.STRING()), Types.STRING(), Types.STRING(), Types.LONG(),
         Types.LONG(), Types.LONG()],
    )  # fmt: skip
    t_env.create_temporary_view("user_inputs", t_env.from_changelog_stream(
        env.from_collection(rows, type_info=types)))  # fmt: skip
    with changes_of(t_env, analysis=analysis).execute().collect() as out:
        return list(out)


def through_days(rows: list) -> dict[tuple, tuple]:
    """The totals' changes (``rows``) summed per key and day, and run through each day of
    their period: ``(grp, period_start, period_end, segment, sv, kind, name, day) -> stats``."""
    summed: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0, 0])
    for r in rows:
        experiment, grp, start, end, d, segment, sv, kind, name, *stats = r
        if kind == "event_type" or kind.startswith("series_"):
            continue
        assert experiment == "exp"
        total = summed[(grp, start, end, segment, sv, kind, name, d)]
        for i, s in enumerate(stats):
            total[i] += s
    totals: dict[tuple, tuple] = {}
    for key in {k[:-1] for k in summed}:
        running = [0, 0, 0, 0.0, 0.0, 0]
        for day in range(key[1] // DAY, (key[2] - 1) // DAY + 1):
            for i, s in enumerate(summed.get((*key, day), (0, 0, 0, 0.0, 0.0, 0))):
                running[i] += s
            if any(running):
                totals[(*key, day)] = tuple(running)
    return totals


def run(stream_env: Any, inputs: list[tuple], analysis: dict | None = None) -> Outcome:
    """The operator's changes over ``inputs``, summed up: totals through each day of the
    period, series per bucket, event types (one group and period: ``g`` from ``P0``)."""
    out = changes(stream_env, inputs, analysis)
    series: Counter = Counter()
    event_types: Counter = Counter()
    for r in out:
        experiment, grp, start, end, d, _, _, kind, name, *stats = r
        if kind == "event_type":
            event_types[name] += stats[0]
        elif kind.startswith("series_"):
            assert (experiment, grp, start, end) == ("exp", "g", P0, end)
            series[(kind[len("series_") :], name, d)] += stats[0]
    totals = {}
    for (grp, start, end, *key, day), stats in through_days(out).items():
        assert (grp, start) == ("g", P0)
        totals[(*key, end, day)] = stats  # (segment, sv, kind, name, end, day)
    return Outcome(totals, +series, set(+event_types), {r.get_row_kind() for r in out})


@dataclass(frozen=True)
class Counted:
    event_type: str
    ts: int
    value: float = 1.0
    seg: str | None = None


def expected(
    t_u: int,
    counted: list[Counted],
    end: int = P1,
    interval: int = P0,
    before: list[Counted] | None = None,
) -> Outcome:
    """What one user exposed at ``t_u`` (in the allocation interval from ``interval``) with
    these counted events adds to the totals: the user's values through each day of the
    period (docs/metrics.md §5, §7), and the series; with ``before``, the events of the
    CUPED covariate's window (§8.4), for an experiment with CUPED."""
    totals: dict[tuple, tuple] = {}
    # by (ts, type): Python compares text by code point, as batch does
    first_seg = min(((c.ts, c.event_type, c.seg) for c in counted if c.seg is not None),
                    default=None)  # fmt: skip

    def put(slot: tuple, stats: tuple, sv: str, day: int) -> None:
        for key in (("", "", *slot), ("seg", sv, *slot)):
            totals[(*key, end, day)] = stats

    for day in range(t_u // DAY, (end - 1) // DAY + 1):
        sv = first_seg[2] if first_seg is not None and first_seg[0] // DAY <= day else ""
        put(("exposed", ""), (1, 0, 0, 0.0, 0.0, 0), sv, day)
        totals[("", "", "interval", str(interval), end, day)] = (1, 0, 0, 0.0, 0.0, 0)
        through = [c for c in counted if c.ts // DAY <= day]
        by_type: dict[str, tuple[int, float]] = {}
        for c in through:
            n, v = by_type.get(c.event_type, (0, 0.0))
            by_type[c.event_type] = (n + 1, v + c.value)
        for t, (n, v) in by_type.items():
            put(("type", t), (n, 1, n * n, v, v * v, int(v != 0)), sv, day)
        for pid, (num, ns, den, ds) in PAIRS.items():
            if num in by_type and den in by_type:
                x = by_type[num][1] if ns == "sum" else by_type[num][0]
                y = by_type[den][1] if ds == "sum" else by_type[den][0]
                put(("pair", pid), (0, 0, 0, x * y, 0.0, int(x * y != 0)), sv, day)
        covariates: dict[str, tuple[int, float]] = {}
        for c in before if before is not None else []:
            n, v = covariates.get(c.event_type, (0, 0.0))
            covariates[c.event_type] = (n + 1, v + c.value)
        for t, (pc, pv) in covariates.items():
            put(("pre", t), (pc, 0, pc * pc, pv, pv * pv, int(pv != 0)), sv, day)
            if t in by_type:
                n, v = by_type[t]
                put(("pre_xy", t), (n * pc, 0, 0, v * pv, 0.0, int(v * pv != 0)), sv, day)
    series: Counter = Counter({("exposed", "", t_u // BUCKET): 1})
    firsts: dict[str, int] = {}
    for c in counted:
        series[("volume", c.event_type, c.ts // BUCKET)] += 1
        firsts[c.event_type] = min(firsts.get(c.event_type, c.ts), c.ts)
    for t, ts in firsts.items():
        series[("propensity", t, ts // BUCKET)] += 1
    types = {c.event_type for c in counted}
    return Outcome(totals, series, types | {c.event_type for c in before or []}, set())


def assert_outcome(got: Outcome, want: Outcome) -> None:
    from pyflink.common.types import RowKind

    assert got.kinds <= {RowKind.INSERT}, got.kinds  # changes only add up
    assert set(got.totals) == set(want.totals), (
        sorted(set(got.totals) - set(want.totals)),
        sorted(set(want.totals) - set(got.totals)),
    )
    for key, stats in want.totals.items():
        assert got.totals[key] == pytest.approx(stats, rel=1e-12, abs=1e-9), key
    assert got.series == want.series
    assert got.event_types == want.event_types


def test_copies_count_once_and_the_first_to_arrive_wins(stream_env: Any) -> None:
    got = run(stream_env, [
        activation(1, T0),
        event(1, "click", T0 + 10, value=2.0, seg="a"),
        event(1, "click", T0 + 10, value=9.0, seg="b"),  # a copy: left out
        event(1, "view", T0 + 10, value=4.0),  # another type at the same time: another event
    ])  # fmt: skip
    assert_outcome(got, expected(T0, [Counted("click", T0 + 10, 2.0, "a"),
                                      Counted("view", T0 + 10, 4.0)]))  # fmt: skip


def test_the_cap_keeps_the_hours_first_events_by_time_then_type(stream_env: Any) -> None:
    got = run(stream_env, [
        activation(1, T0),
        event(1, "b", T0 + 5),
        event(1, "c", T0 + 5),  # the hour is full (cap 2)
        event(1, "d", T0 + 9),  # beyond the cap: left out
        event(1, "a", T0 + 5, value=3.0),  # late, first by type: displaces (T0+5, "c")
        event(1, "c", T0 + 5),  # a copy of the displaced event: still out
        event(1, "z", T0 + H),  # the next clock hour has its own cap
    ])  # fmt: skip
    assert_outcome(got, expected(T0, [Counted("a", T0 + 5, 3.0), Counted("b", T0 + 5),
                                      Counted("z", T0 + H)]))  # fmt: skip


def test_events_before_their_activation_and_an_earlier_activation_arriving_late(
    stream_env: Any,
) -> None:
    got = run(stream_env, [
        event(1, "e", T0 + 10),
        event(1, "e", T0 + 2 * H),
        event(1, "e", T0 + 3 * H),
        activation(1, T0 + 2 * H),  # counts the events from T0 + 2h: two
        activation(1, T0 + 3 * H),  # later: t_u stays
        activation(1, T0),  # an earlier one arrives late: the event at T0 + 10 counts too
        event(1, "e", P1),  # at the period's end: outside it
    ])  # fmt: skip
    assert_outcome(got, expected(T0, [Counted("e", T0 + 10), Counted("e", T0 + 2 * H),
                                      Counted("e", T0 + 3 * H)]))  # fmt: skip


def test_retracted_activations_take_their_events_back(stream_env: Any) -> None:
    got = run(stream_env, [
        activation(1, T0),
        activation(1, T0 + 2 * H),
        event(1, "e", T0 + 10, seg="x"),
        event(1, "e", T0 + 3 * H),
        activation(1, T0, kind="-D"),  # t_u moves to T0 + 2h: the event at T0 + 10 goes
        # A re-ramp moves the period's end: the activation of the old period is retracted,
        # the same activation of the new period added (a join's -U/+U).
        activation(1, T0 + 2 * H, kind="-U"),
        activation(1, T0 + 2 * H, kind="+U", end=P1 + DAY),
        activation(2, T0, kind="-D"),  # a retraction of nothing held: nothing
    ])  # fmt: skip
    assert_outcome(got, expected(T0 + 2 * H, [Counted("e", T0 + 3 * H)], end=P1 + DAY))


def test_a_displaced_first_event_gives_way_to_the_next_of_its_type(stream_env: Any) -> None:
    got = run(stream_env, [
        activation(1, T0),
        event(1, "a", T0 + 2 * H),  # the next of type "a", another hour
        event(1, "b", T0 + 5),
        event(1, "a", T0 + 7, seg="first"),  # the first "a"; the hour is full (cap 2)
        event(1, "c", T0 + 3),  # late: displaces (T0 + 7, "a"), and its segment value
    ])  # fmt: skip
    assert_outcome(got, expected(T0, [Counted("a", T0 + 2 * H), Counted("b", T0 + 5),
                                      Counted("c", T0 + 3)]))  # fmt: skip


def test_values_through_each_day_with_late_events_and_a_segment_value_found_later(
    stream_env: Any,
) -> None:
    # Exposed on the period's first day, events over three days arriving out of order: the
    # segment value comes from the first event by time that has the field, from its day on.
    got = run(stream_env, [
        activation(1, P0 + H),
        event(1, "a", T0 + DAY + 5, value=2.5, seg="late"),
        event(1, "c", T0 + DAY + 6),
        event(1, "a", T0 + 5, value=1.5),
        event(1, "b", T0 + 7, value=7.0, seg="de"),  # the first with the field, found late
        event(1, "a", P0 + 2 * H, value=4.0),
        event(1, "click", P0 + 3 * H),
        event(1, "view", T0 + H + 9, value=0.5),
        event(1, "c", T0 + DAY + 6),  # a copy
    ])  # fmt: skip
    assert_outcome(got, expected(P0 + H, [
        Counted("a", T0 + DAY + 5, 2.5, "late"), Counted("c", T0 + DAY + 6),
        Counted("a", T0 + 5, 1.5), Counted("b", T0 + 7, 7.0, "de"), Counted("a", P0 + 2 * H, 4.0),
        Counted("click", P0 + 3 * H), Counted("view", T0 + H + 9, 0.5),
    ]))  # fmt: skip


def test_an_earlier_activation_moves_the_exposure_to_an_earlier_day(stream_env: Any) -> None:
    got = run(stream_env, [
        activation(1, T0 + DAY),
        event(1, "a", T0 + DAY + 1, seg="s1"),
        event(1, "c", P0 + 5, seg="s0"),  # before t_u: not counted yet
        event(1, "a", T0 + 8),
        activation(1, P0),  # the exposure now starts on the first day, with all three events
    ])  # fmt: skip
    assert_outcome(got, expected(P0, [Counted("a", T0 + DAY + 1, 1.0, "s1"),
                                      Counted("c", P0 + 5, 1.0, "s0"), Counted("a", T0 + 8)]))  # fmt: skip


def test_a_split_interval_moves_the_exposure_to_the_new_one(stream_env: Any) -> None:
    # A ramp at T0 + 1h cuts the interval from P0: the join re-sends the activations after
    # it with the new interval (its -U/+U of the piece), in either order.
    split = T0 + H
    got = run(stream_env, [
        activation(1, T0 + 2 * H),
        event(1, "e", T0 + 3 * H),
        activation(1, T0 + 2 * H, kind="+U", interval=split),
        activation(1, T0 + 2 * H, kind="-U"),
        activation(2, T0 + 2 * H, interval=split),  # a second user, after the ramp
        activation(2, T0 + 2 * H, kind="-U", interval=split),  # a retraction: gone
    ])  # fmt: skip
    assert_outcome(got, expected(T0 + 2 * H, [Counted("e", T0 + 3 * H)], interval=split))


@pytest.mark.parametrize("multiple_groups", ["keep", "exclude"])
def test_a_user_in_two_groups_on_a_day_counts_in_multi_and_is_left_out_that_day(
    stream_env: Any, multiple_groups: str
) -> None:
    # Group g's period covers the three days D0-D2; group h's period only D1 (docs/metrics.md
    # §14): the user is in two groups on D1 alone, and with "exclude" left out of both that
    # day, then back in g on D2 with every event through it.
    d0, d1, d2 = P0 // DAY, P0 // DAY + 1, P0 // DAY + 2
    h_end = T0 + DAY
    got = through_days(changes(stream_env, [
        event(1, "e", P0 + 2 * H),
        activation(1, T0 + H, grp="h", start=T0, end=h_end),  # h first: g's arrives later
        event(1, "e", T0 + 2 * H),
        activation(1, P0 + H),
        event(1, "e", T0 + DAY + 5),
    ], {"exp": {"multiple_groups": multiple_groups}}))  # fmt: skip
    counts = {(grp, kind, day): stats[0] for (grp, _, _, segment, _, kind, _, day), stats
              in got.items() if segment == "" and kind in ("exposed", "multi", "type")}  # fmt: skip
    kept = multiple_groups == "keep"
    want = {("g", "exposed", d0): 1, ("g", "type", d0): 1, ("g", "multi", d1): 1,
            ("g", "exposed", d2): 1, ("g", "type", d2): 3, ("h", "multi", d1): 1}  # fmt: skip
    if kept:
        want |= {("g", "exposed", d1): 1, ("g", "type", d1): 2, ("h", "exposed", d1): 1,
                 ("h", "type", d1): 1}  # fmt: skip
    assert counts == want


CUPED = {"exp": {"cuped": {"pre_days": 1}}}  # the covariate: the day before t_u


def test_the_covariate_counts_the_users_events_of_the_day_before_exposure(
    stream_env: Any,
) -> None:
    t_u = T0 + 6 * H
    got = run(stream_env, [
        event(1, "a", t_u - DAY - 1, value=9.0),  # before the window: not in it
        event(1, "a", t_u - DAY, value=2.0, seg="w"),  # its first ms: in it
        event(1, "b", t_u - H, value=3.0),
        activation(1, t_u),  # computes the covariate from the events it holds
        event(1, "a", t_u - 2 * H, value=0.5),  # late, inside the window: changes it
        event(1, "a", t_u + H, value=4.0),  # inside the exposure: counted, not covariate
        event(1, "b", t_u - 1, value=1.0),  # the window's last ms
    ], analysis=CUPED)  # fmt: skip
    assert_outcome(got, expected(t_u, [Counted("a", t_u + H, 4.0)], before=[
        Counted("a", t_u - DAY, 2.0), Counted("b", t_u - H, 3.0), Counted("a", t_u - 2 * H, 0.5),
        Counted("b", t_u - 1, 1.0)]))  # fmt: skip
    assert ("", "", "pre_xy", "a", P1, t_u // DAY) in got.totals  # 1 event x 2 before


def test_a_covariate_event_the_cap_displaces_is_taken_back(stream_env: Any) -> None:
    t_u = T0 + 6 * H
    got = run(stream_env, [
        activation(1, t_u),
        event(1, "b", T0 + 5, value=3.0),
        event(1, "c", T0 + 7, value=5.0),  # the hour is full (cap 2)
        event(1, "a", T0 + 1, value=2.0),  # late, first: displaces (T0 + 7, "c")
    ], analysis=CUPED)  # fmt: skip
    assert_outcome(got, expected(t_u, [], before=[Counted("b", T0 + 5, 3.0),
                                                  Counted("a", T0 + 1, 2.0)]))  # fmt: skip


def event_type_changes(flink: Any, state_ttl_ms: int | None) -> int:
    """The ``event_type`` changes of two copies of one event, a second apart (a paced source),
    in ``flink``'s table environment: the second is a copy of the first as long as the user's
    state lives."""
    t_env = flink.t_env
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE ticks (n BIGINT) WITH ('connector' = 'datagen', "
        "'rows-per-second' = '1', 'number-of-rows' = '2', 'fields.n.kind' = 'sequence', "
        "'fields.n.start' = '1', 'fields.n.end' = '2')"
    )
    t_env.execute_sql(
        "CREATE TEMPORARY VIEW user_inputs AS SELECT CAST(1 AS BIGINT) AS user_id, "
        f"'click' AS event_type, CAST({T0} AS BIGINT) AS ts, CAST(1.0 AS DOUBLE) AS `value`, "
        "ARRAY[CAST(NULL AS STRING)] AS segs, CAST(NULL AS STRING) AS experiment, "
        "CAST(NULL AS STRING) AS grp, CAST(NULL AS BIGINT) AS period_start, "
        "CAST(NULL AS BIGINT) AS period_end, CAST(NULL AS BIGINT) AS interval_start FROM ticks"
    )
    with changes_of(t_env, state_ttl_ms).execute().collect() as out:
        return sum(r[9] for r in out if r[7] == "event_type")


def test_the_state_lives_as_long_as_its_time_to_live(stream_env: Any) -> None:
    # Kept for ever (a replay): the copy is seen as one. Kept 1 ms (a run's TTL, shortened):
    # the user's state is gone when the copy comes, so it counts as a user's first event again.
    assert event_type_changes(stream_env(), None) == 1
    assert event_type_changes(stream_env(), 1) == 2
