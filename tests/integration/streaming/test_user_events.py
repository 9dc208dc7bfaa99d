"""The per-user operator (``UserEvents.java``) on hand-made inputs: each rule of
docs/metrics.md §1-3 it applies, with the expected rows written from the rule, not from the
operator. The replay tests check it against batch on a generated workload; these pin the
cases one at a time, and that every deletion it emits takes back a row it inserted."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

pytestmark = [pytest.mark.flink]

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00Z: a clock hour's start
P0, P1 = T0 - 24 * H, T0 + 48 * H  # a period around it
CAP = 2
COLUMNS = ("user_id", "event_type", "ts", "value", "segs", "experiment", "grp",
           "period_start", "period_end")  # fmt: skip


def event(user: int, event_type: str, ts: int, value: float = 1.0, seg: str | None = None) -> tuple:
    return ("+I", (user, event_type, ts, value, [seg], None, None, None, None))


def activation(user: int, ts: int, kind: str = "+I", end: int = P1) -> tuple:
    return (kind, (user, None, ts, None, None, "exp", "g", P0, end))


def run(inputs: list[tuple]) -> tuple[Counter, list[str]]:
    """The operator's output over ``inputs`` in this order (one subtask, so the order holds):
    the rows that hold at the end, and any deletion of a row not held at the time."""
    from pyflink.common import Configuration, Row
    from pyflink.common.typeinfo import Types
    from pyflink.common.types import RowKind
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    from streaming import jvm
    from streaming.jobs.aggregation import user_rows_query

    conf = Configuration()
    conf.set_string("parallelism.default", "1")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    t_env = StreamTableEnvironment.create(env)
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
         Types.LONG()],
    )  # fmt: skip
    t_env.create_temporary_view("user_inputs", t_env.from_changelog_stream(
        env.from_collection(rows, type_info=types)))  # fmt: skip
    jvm.register(t_env)
    # the segment out of its array: PyFlink's client cannot read an array holding a NULL
    table = t_env.sql_query(
        "SELECT user_id, kind, experiment, grp, period_start, period_end, t_u, event_type, ts, "
        f"`value`, segs[1] AS seg FROM ({user_rows_query('user_inputs', CAP)})"
    )
    held: Counter = Counter()
    wrong: list[str] = []
    with table.execute().collect() as results:
        for r in results:
            key = _key(r)
            if r.get_row_kind() == RowKind.INSERT:
                held[key] += 1
            elif held[key] > 0:
                held[key] -= 1
            else:
                wrong.append(f"{r.get_row_kind()} of a row not held: {key}")
    return +held, wrong


def _key(r: Any) -> tuple:
    user, kind = r[0], r[1]
    if kind == "x":
        return (user, "x", r[2], r[3], r[4], r[5], r[6])
    if kind == "c":
        return (user, "c", r[2], r[3], r[4], r[5], r[7], r[8], r[9], r[10])
    if kind == "f":
        return (user, "f", r[2], r[3], r[4], r[5], r[7], r[8])
    return (user, "t", r[7])


def exposure(user: int, t_u: int) -> tuple:
    return (user, "x", "exp", "g", P0, P1, t_u)


def first(user: int, event_type: str, ts: int, end: int = P1) -> tuple:
    """The exposure's first counted event of ``event_type``."""
    return (user, "f", "exp", "g", P0, end, event_type, ts)


def counted(user: int, event_type: str, ts: int, value: float = 1.0, seg: str | None = None,
            end: int = P1) -> tuple:  # fmt: skip
    return (user, "c", "exp", "g", P0, end, event_type, ts, value, seg)


def test_copies_count_once_and_the_first_to_arrive_wins() -> None:
    held, wrong = run([
        activation(1, T0),
        event(1, "click", T0 + 10, value=2.0, seg="a"),
        event(1, "click", T0 + 10, value=9.0, seg="b"),  # a copy: left out
        event(1, "view", T0 + 10),  # another type at the same time: another event
    ])  # fmt: skip
    assert not wrong
    assert held == Counter({
        exposure(1, T0): 1,
        counted(1, "click", T0 + 10, 2.0, "a"): 1,
        counted(1, "view", T0 + 10): 1,
        first(1, "click", T0 + 10): 1,
        first(1, "view", T0 + 10): 1,
        (1, "t", "click"): 1,
        (1, "t", "view"): 1,
    })  # fmt: skip


def test_the_cap_keeps_the_hours_first_events_by_time_then_type() -> None:
    held, wrong = run([
        activation(1, T0),
        event(1, "b", T0 + 5),
        event(1, "c", T0 + 5),  # the hour is full (cap 2)
        event(1, "d", T0 + 9),  # beyond the cap: left out
        event(1, "a", T0 + 5),  # late, first by type: displaces (T0+5, "c")
        event(1, "c", T0 + 5),  # a copy of the displaced event: still out
        event(1, "z", T0 + H),  # the next clock hour has its own cap
    ])  # fmt: skip
    assert not wrong
    assert held == Counter({
        exposure(1, T0): 1,
        counted(1, "a", T0 + 5): 1,
        counted(1, "b", T0 + 5): 1,
        counted(1, "z", T0 + H): 1,
        first(1, "a", T0 + 5): 1,
        first(1, "b", T0 + 5): 1,
        first(1, "z", T0 + H): 1,
        (1, "t", "a"): 1,
        (1, "t", "b"): 1,
        (1, "t", "z"): 1,
    })  # fmt: skip


def test_events_before_their_activation_and_an_earlier_activation_arriving_late() -> None:
    held, wrong = run([
        event(1, "e", T0 + 10),
        event(1, "e", T0 + 2 * H),
        event(1, "e", T0 + 3 * H),
        activation(1, T0 + 2 * H),  # counts the events from T0 + 2h: two
        activation(1, T0 + 3 * H),  # later: t_u stays
        activation(1, T0),  # an earlier one arrives late: the event at T0 + 10 counts too
        event(1, "e", P1),  # at the period's end: outside it
    ])  # fmt: skip
    assert not wrong
    assert held == Counter({
        exposure(1, T0): 1,
        counted(1, "e", T0 + 10): 1,
        counted(1, "e", T0 + 2 * H): 1,
        counted(1, "e", T0 + 3 * H): 1,
        first(1, "e", T0 + 10): 1,
        (1, "t", "e"): 1,
    })  # fmt: skip


def test_retracted_activations_take_their_events_back() -> None:
    held, wrong = run([
        activation(1, T0),
        activation(1, T0 + 2 * H),
        event(1, "e", T0 + 10),
        event(1, "e", T0 + 3 * H),
        activation(1, T0, kind="-D"),  # t_u moves to T0 + 2h: the event at T0 + 10 goes
        # A re-ramp moves the period's end: the activation of the old period is retracted,
        # the same activation of the new period added (a join's -U/+U).
        activation(1, T0 + 2 * H, kind="-U"),
        activation(1, T0 + 2 * H, kind="+U", end=P1 + H),
        activation(2, T0, kind="-D"),  # a retraction of nothing held: nothing
    ])  # fmt: skip
    assert not wrong
    assert held == Counter({
        (1, "x", "exp", "g", P0, P1 + H, T0 + 2 * H): 1,
        counted(1, "e", T0 + 3 * H, end=P1 + H): 1,
        first(1, "e", T0 + 3 * H, end=P1 + H): 1,
        (1, "t", "e"): 1,
    })  # fmt: skip


def test_a_displaced_first_event_gives_way_to_the_next_of_its_type() -> None:
    held, wrong = run([
        activation(1, T0),
        event(1, "a", T0 + 2 * H),  # the next of type "a", another hour
        event(1, "b", T0 + 5),
        event(1, "a", T0 + 7),  # the first "a"; the hour is full (cap 2)
        event(1, "c", T0 + 3),  # late: displaces (T0 + 7, "a")
    ])  # fmt: skip
    assert not wrong
    assert held == Counter({
        exposure(1, T0): 1,
        counted(1, "a", T0 + 2 * H): 1,
        counted(1, "b", T0 + 5): 1,
        counted(1, "c", T0 + 3): 1,
        first(1, "a", T0 + 2 * H): 1,
        first(1, "b", T0 + 5): 1,
        first(1, "c", T0 + 3): 1,
        (1, "t", "a"): 1,
        (1, "t", "b"): 1,
        (1, "t", "c"): 1,
    })  # fmt: skip
