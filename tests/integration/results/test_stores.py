"""What the contract §4 asks of every results store, on each of them.

``store`` is the embedded store on SQLite, PostgreSQL and MariaDB, and the Druid store
against the fake Druid router: a rerun replaces, never adds to, the rows of its slice.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from results.schema import ResultRow
from results.stores.base import ResultsStore
from tests.support.result_rows import DAY, make_row, slice_of, slice_rows, treatment
from udf.errors import InputError

NEXT_DAY = DAY + timedelta(days=1)


def test_recomputing_a_slice_twice_leaves_exactly_one_copy(store: ResultsStore) -> None:
    piece, rows = slice_of(("click", "search")), slice_rows(("click", "search"))
    assert store.replace(piece, rows) == 4
    assert store.replace(piece, rows) == 4
    assert store.read() == sorted(rows, key=ResultRow.key)


def test_a_recompute_replaces_the_slice_with_its_new_rows(store: ResultsStore) -> None:
    piece = slice_of(("click",))
    store.replace(piece, [make_row(), treatment(), treatment(group="treatment2")])
    newer = [make_row(volume=8, computed_at=2), treatment(volume=9, computed_at=2)]
    store.replace(piece, newer)
    assert store.read() == sorted(newer, key=ResultRow.key)


def test_replacing_a_slice_leaves_every_other_slice_untouched(store: ResultsStore) -> None:
    others = {
        "another metric, same day": (slice_of(("search",)), slice_rows(("search",))),
        "another day": (slice_of(day=NEXT_DAY), slice_rows(date=NEXT_DAY.isoformat())),
        "the day before": (
            slice_of(day=DAY - timedelta(days=1)),
            slice_rows(date=(DAY - timedelta(days=1)).isoformat()),
        ),
        "streaming": (slice_of(source="stream"), slice_rows(source="stream")),
        "another type": (
            slice_of(metric_type="calendar_day"),
            slice_rows(metric_type="calendar_day"),
        ),
    }
    for piece, rows in others.values():
        store.replace(piece, rows)
    piece = slice_of(("click",))
    store.replace(piece, slice_rows())
    store.replace(piece, slice_rows(volume=1))
    kept = [row for _, rows in others.values() for row in rows]
    assert store.read() == sorted([*kept, *slice_rows(volume=1)], key=ResultRow.key)


def test_a_slice_of_some_experiments_keeps_the_others(store: ResultsStore) -> None:
    everyone = slice_rows(experiments=("a", "b", "c"))
    store.replace(slice_of(), everyone)
    store.replace(slice_of(experiments=("b",)), slice_rows(experiments=("b",), volume=0))
    expected = [r for r in everyone if r.experiment != "b"] + slice_rows(
        experiments=("b",), volume=0
    )
    assert store.read() == sorted(expected, key=ResultRow.key)


def test_an_empty_recompute_deletes_the_slice(store: ResultsStore) -> None:
    store.replace(slice_of(("click",)), slice_rows())
    store.replace(slice_of(("search",)), slice_rows(("search",)))
    assert store.replace(slice_of(("click",)), []) == 0
    assert store.read() == sorted(slice_rows(("search",)), key=ResultRow.key)
    assert store.replace(slice_of(day=NEXT_DAY), []) == 0  # nothing there: still fine
    assert len(store.read()) == 2


def test_rows_outside_the_slice_are_refused_and_nothing_changes(store: ResultsStore) -> None:
    store.replace(slice_of(), slice_rows())
    with pytest.raises(InputError, match="outside the slice"):
        store.replace(slice_of(), [make_row(volume=0), make_row(metric="search")])
    with pytest.raises(InputError, match="appears twice"):
        store.replace(slice_of(), [make_row(volume=0), make_row(volume=1)])
    assert store.read() == sorted(slice_rows(), key=ResultRow.key)


def test_values_round_trip_exactly(store: ResultsStore) -> None:
    rows = [
        make_row(experiment="l'exp \"q\" ü 🚀", segment="country", segment_value="Côte d'Ivoire"),
        treatment(experiment="l'exp \"q\" ü 🚀", segment="country", segment_value="Côte d'Ivoire",
                  status="", den_sum=3.0, den_sum_sq=5.25, sum_xy=-7.5),
        treatment(experiment="l'exp \"q\" ü 🚀", group="b", segment="country",
                  segment_value="Côte d'Ivoire", lift_abs=None, lift_rel=None, ci_low=None,
                  ci_high=None, rel_ci_low=None, rel_ci_high=None, p_value=None,
                  p_value_adjusted=None, status="zero_variance"),
        make_row(experiment="l'exp \"q\" ü 🚀", segment="country", segment_value="",
                 exposed=2**40, n=2**40, sum=1e15 + 0.5, sum_sq=2.0**80, day_in=7),
        # text ending in a backslash (pydruid's parser stumbles on it) and in the Druid
        # store's read mark
        make_row(experiment="l'exp \"q\" ü 🚀", segment="path", segment_value="C:\\"),
        make_row(experiment="l'exp \"q\" ü 🚀", segment="path", segment_value='a"\\'),
        make_row(experiment="l'exp \"q\" ü 🚀", segment="path", segment_value="end."),
    ]  # fmt: skip
    piece = slice_of(experiments=('l\'exp "q" ü 🚀',))
    store.replace(piece, rows)
    assert store.read() == sorted(rows, key=ResultRow.key)


def test_read_filters(store: ResultsStore) -> None:
    days = [DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)]
    for day in days:
        store.replace(
            slice_of(("click", "search"), day=day),
            slice_rows(("click", "search"), ("a", "b"), date=day.isoformat()),
        )
    store.replace(slice_of(source="stream"), slice_rows(source="stream"))
    store.replace(slice_of(metric_type="days_in"), slice_rows(metric_type="days_in", day_in=1))

    def keys(rows: list[ResultRow]) -> set[tuple[str, str, str, str, str]]:
        return {(r.source, r.metric_type, r.date, r.metric, r.experiment) for r in rows}

    everything = store.read()
    assert len(everything) == 3 * 8 + 2 + 2
    assert everything == sorted(everything, key=ResultRow.key)
    assert {r.source for r in store.read(source="stream")} == {"stream"}
    assert {r.metric_type for r in store.read(metric_type="days_in")} == {"days_in"}
    middle = store.read(
        source="batch", metric_type="aggregated", date_from=days[1], date_to=days[1]
    )
    assert {r.date for r in middle} == {days[1].isoformat()} and len(middle) == 8
    assert {r.date for r in store.read(date_from=days[1])} == {d.isoformat() for d in days[1:]}
    assert {r.date for r in store.read(date_to=days[0])} == {days[0].isoformat()}
    assert keys(store.read(metrics=["search"], experiments=["b"])) == {
        ("batch", "aggregated", d.isoformat(), "search", "b") for d in days
    }
    assert store.read(metrics=[]) == [] and store.read(experiments=[]) == []
    assert store.read(source="batch", date_from=date(2030, 1, 1)) == []


def test_concurrent_recomputes_of_one_slice_leave_one_copy(store: ResultsStore) -> None:
    piece, errors = slice_of(("click", "search")), []

    def recompute(version: int) -> None:
        try:
            for _ in range(3):
                store.replace(piece, slice_rows(("click", "search"), computed_at=version))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=recompute, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    rows = store.read()
    assert len(rows) == 4 and len({r.computed_at for r in rows}) == 1


def test_concurrent_recomputes_of_one_day_keep_every_slice(store: ResultsStore) -> None:
    """Writers of different slices of one day (for Druid: each rewrites the whole day)."""
    metrics, errors = ("click", "search", "latency", "visits"), []

    def recompute(metric: str) -> None:
        try:
            for version in range(2):
                store.replace(slice_of((metric,)), slice_rows((metric,), computed_at=version))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=recompute, args=(m,)) for m in metrics]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    rows = store.read()
    assert sorted(rows, key=ResultRow.key) == sorted(
        slice_rows(metrics, computed_at=1), key=ResultRow.key
    )


# --- upsert by key (a stream's rows) ---------------------------------------------------------


def stream_rows(metrics: tuple[str, ...] = ("click",), **fields: object) -> list[ResultRow]:
    return slice_rows(metrics, source="stream", **fields)


def test_an_upsert_adds_new_keys_and_replaces_rows_of_the_same_key(store: ResultsStore) -> None:
    assert store.upsert(stream_rows(("click", "search"))) == 4
    newer = [make_row(source="stream", volume=99, computed_at=2)]  # click control again
    later = stream_rows(("latency",), computed_at=2)
    assert store.upsert([*newer, *later]) == 3
    kept = [r for r in stream_rows(("click", "search")) if r.key() != newer[0].key()]
    assert store.read() == sorted([*kept, *newer, *later], key=ResultRow.key)


def test_a_replayed_upsert_leaves_one_copy_of_each_row(store: ResultsStore) -> None:
    rows = stream_rows(("click", "search"), experiments=("a", "b"))
    for _ in range(3):
        assert store.upsert(rows) == 8
    assert store.read() == sorted(rows, key=ResultRow.key)
    assert store.upsert([]) == 0
    assert store.read() == sorted(rows, key=ResultRow.key)


def test_upserts_and_replaces_leave_each_others_rows_alone(store: ResultsStore) -> None:
    batch = slice_rows(("click", "search"))
    other_day = slice_rows(date=NEXT_DAY.isoformat())
    store.replace(slice_of(("click", "search")), batch)
    store.replace(slice_of(day=NEXT_DAY), other_day)
    # stream rows of the batch's keys but for the stream, on both days in one call
    stream = [*stream_rows(("click",)), *stream_rows(("click",), date=NEXT_DAY.isoformat())]
    store.upsert(stream)
    store.upsert(stream_rows(("click",), volume=0))  # the first day's stream rows again
    now_stream = [*stream_rows(("click",), volume=0), *stream[2:]]
    assert store.read() == sorted([*batch, *other_day, *now_stream], key=ResultRow.key)
    store.replace(slice_of(("click", "search")), [])  # the batch slice goes, the stream stays
    assert store.read() == sorted([*other_day, *now_stream], key=ResultRow.key)


def test_bad_upserts_are_refused_whole(store: ResultsStore) -> None:
    rows = stream_rows()
    store.upsert(rows)
    bad = {
        "appears twice in one upsert": [make_row(source="stream", volume=1)] * 2,
        "not a finite number": [treatment(source="stream", lift_abs=float("nan"))],
        "not a YYYY-MM-DD day": [make_row(source="stream", date="2026-1-2")],
        "unknown results source": [make_row(source="replay")],
        "longer than 128": [make_row(source="stream", metric="m" * 129)],
    }
    for message, changes in bad.items():
        with pytest.raises(InputError, match=message):
            store.upsert([make_row(source="stream", metric="other"), *changes])
    assert store.read() == sorted(rows, key=ResultRow.key)


def test_readers_see_all_of_an_upsert_or_none(store: ResultsStore) -> None:
    experiments = tuple(f"e{i:02d}" for i in range(50))
    versions, reads, errors = range(1, 5), [], []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                reads.append({r.computed_at for r in store.read()})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in versions:
            store.upsert(stream_rows(("click",), experiments=experiments, computed_at=version))
    finally:
        done.set()
        reader.join()
    assert not errors and reads
    assert all(len(seen) <= 1 for seen in reads), [s for s in reads if len(s) > 1][:3]
    assert {r.computed_at for r in store.read()} == {versions[-1]}
