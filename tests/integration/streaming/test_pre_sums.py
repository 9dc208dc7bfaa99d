"""The per-user operator's changes summed in its thread (``PreSums.java``) before the groups'
sums: whatever the flushes, the sums per key are those of the rows themselves.

The rows are made here (the operator's columns) and summed in Python; the
same rows go through :func:`streaming.jobs.aggregation.pre_summed` with a size that sends
the sums every few rows, and with one that holds them to the end of the input.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest

pytestmark = [pytest.mark.flink]

EXPERIMENT_TO_NAME = 9  # experiment, grp, period_start, period_end, d, segment, sv, kind, name
SERIES_KEY = (0, 1, 2, 7, 8, 4)  # experiment, grp, period_start, kind, name, d (the bucket)


def changes(n: int) -> list[tuple]:
    """``n`` rows of changes over few keys, so that keys repeat and cancel: the operator's
    columns."""
    rng = random.Random(7)
    rows = []
    for _ in range(n):
        kind = rng.choice(["exposed", "type", "pair", "event_type", "series_volume",
                           "series_exposed", "series_propensity"])  # fmt: skip
        segment, sv = rng.choice([("", ""), ("country", ""), ("country", "JP"), ("country", "BR")])
        sign = rng.choice([1, -1])
        vsum = sign * rng.choice([0.5, 1.25, 3.0])
        rows.append((rng.choice(["e1", "e2"]), rng.choice(["control", "t"]),
                     1_000, rng.choice([2_000, 3_000]), rng.randrange(3), segment, sv, kind,
                     rng.choice(["click", "view"]), sign, sign * rng.randrange(2),
                     sign * rng.randrange(5), vsum, abs(vsum) * vsum, sign))  # fmt: skip
    return rows


def summed(flink: Any, rows: list[tuple], size: int) -> tuple[Any, Any]:
    """The pre-sums over ``rows`` (their main and side outputs) in ``flink``'s environments
    (one subtask), sent every ``size`` keys or at the end of the input."""
    from pyflink.common.typeinfo import Types

    from streaming.jobs import internal_rows
    from streaming.jobs.aggregation import TOTAL_COLUMNS, pre_summed

    env, t_env = flink.env, flink.t_env
    text, number, real = Types.STRING(), Types.LONG(), Types.DOUBLE()
    types = Types.ROW_NAMED(
        list(TOTAL_COLUMNS),
        [text, text, number, number, number, text, text, text, text, number, number,
         number, real, real, number],
    )  # fmt: skip
    table = t_env.from_data_stream(env.from_collection(rows, type_info=types))
    return pre_summed(t_env, internal_rows(t_env, table), latency_ms=3_600_000, size=size)


def run(flink: Any, rows: list[tuple], size: int) -> tuple[list[tuple], list[tuple]]:
    """The rows of the pre-sums' main and side outputs over ``rows``."""
    out = []
    for table in summed(flink, rows, size):
        with table.execute().collect() as results:
            out.append([tuple(r) for r in results])
    return out[0], out[1]


def sums(rows: list[tuple], key: tuple[int, ...], stats: tuple[int, ...]) -> dict[tuple, list]:
    totals: dict[tuple, list] = defaultdict(lambda: [0] * len(stats))
    for row in rows:
        for i, s in enumerate(stats):
            totals[tuple(row[k] for k in key)][i] += row[s]
    return dict(totals)


@pytest.mark.parametrize("size", [3, 1_000_000])
def test_the_pre_sums_are_the_sums_of_the_rows(size: int, stream_env: Any) -> None:
    rows = changes(2_000)
    totals, series = run(stream_env(), rows, size)
    want_totals = sums([r for r in rows if not r[7].startswith("series_")],
                       tuple(range(EXPERIMENT_TO_NAME)), tuple(range(9, 15)))  # fmt: skip
    want_series = sums([r for r in rows if r[7].startswith("series_")], SERIES_KEY, (9,))
    got_totals = sums(totals, tuple(range(EXPERIMENT_TO_NAME)), tuple(range(9, 15)))
    got_series = sums(series, tuple(range(6)), (6,))
    assert got_totals.keys() == want_totals.keys()
    for key, want in want_totals.items():
        assert got_totals[key][:3] + got_totals[key][5:] == want[:3] + want[5:], key
        assert got_totals[key][3:5] == pytest.approx(want[3:5], abs=1e-9), key
    assert got_series == want_series
    if size == 3:  # sent every few keys: some keys more than once
        assert len(totals) > len(want_totals) and len(series) > len(want_series)
    else:  # held to the end of the input: each key once, its rows summed
        assert len(totals) == len(want_totals) and len(series) == len(want_series)


def test_the_sums_held_to_the_end_come_before_its_watermark(stream_env: Any) -> None:
    """A watermark waits for the sums held with it: a function that counts rows until an
    event-time timer at the end of time fires (as the results sink flushes its last rows)
    sees every sum, though all were held to the end of the input."""
    from pyflink.common.typeinfo import Types
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import ValueStateDescriptor

    from streaming.functions.results_sink import END_OF_INPUT  # fires at the final watermark

    class CountedAtTheEnd(KeyedProcessFunction):
        def open(self, runtime_context: RuntimeContext) -> None:
            self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))

        def process_element(self, value: Any, ctx: Any) -> Any:
            self.n.update((self.n.value() or 0) + 1)
            ctx.timer_service().register_event_time_timer(END_OF_INPUT)
            return iter(())

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield self.n.value()

    rows = changes(500)
    flink = stream_env()
    t_env = flink.t_env
    totals, _ = summed(flink, rows, 1_000_000)
    rows_of = t_env.sql_query(f"SELECT 1 AS n FROM {totals}")  # no text: SQL's own strings
    counted = (t_env.to_data_stream(rows_of).key_by(lambda r: 0, key_type=Types.INT())
               .process(CountedAtTheEnd(), output_type=Types.LONG()))  # fmt: skip
    keys = {r[:9] for r in rows if not r[7].startswith("series_")}
    assert list(counted.execute_and_collect()) == [len(keys)]
