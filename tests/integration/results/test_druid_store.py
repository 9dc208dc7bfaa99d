"""The Druid store against the fake router: what it sends, failures, polling and the lock."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import requests

from results.schema import SCHEMA_VERSION, ResultRow
from results.stores.druid import DruidResultsStore
from results.stores.locks import LeaseLock
from tests.integration.results.conftest import DATASOURCE, quick_sleep
from tests.support.fake_druid import FakeDruid
from tests.support.result_rows import DAY, make_row, slice_of, slice_rows
from udf.errors import InputError, ResultsError

ENDPOINTS = {"/druid/v2/sql/", "/druid/v2/sql/task"}
NEXT_DAY = DAY + timedelta(days=1)


def test_a_failed_task_leaves_the_previous_rows(
    druid: DruidResultsStore, fake_druid: FakeDruid
) -> None:
    before = slice_rows()
    druid.replace(slice_of(), before)
    fake_druid.fail_next_task("java.lang.OutOfMemoryError: worker ran out of memory")
    with pytest.raises(ResultsError, match=r"failed: java\.lang\.OutOfMemoryError"):
        druid.replace(slice_of(), slice_rows(volume=0))
    assert druid.read() == sorted(before, key=ResultRow.key)
    assert len(fake_druid.rows(DATASOURCE)) == len(before)
    druid.replace(slice_of(), slice_rows(volume=0))  # and the next attempt goes through
    assert druid.read() == sorted(slice_rows(volume=0), key=ResultRow.key)


def inline_rows(statement: str) -> list[ResultRow]:
    """The rows a REPLACE sends in its inline EXTERN."""
    source = statement.split("TABLE(EXTERN('", 1)[1].split("', '", 1)[0].replace("''", "'")
    data = json.loads(source)["data"]
    return [ResultRow.from_dict(json.loads(line)) for line in data.splitlines()]


def test_the_statement_sends_the_whole_day_inline(
    druid: DruidResultsStore, fake_druid: FakeDruid
) -> None:
    druid.replace(slice_of(("search",)), slice_rows(("search",)))
    druid.replace(slice_of(day=NEXT_DAY), slice_rows(date=NEXT_DAY.isoformat()))
    new = slice_rows(experiments=("exp", "o'k"), volume=0)
    druid.replace(slice_of(("click",), experiments=("exp", "o'k")), new)
    first, _, third = fake_druid.statements()
    day = "\"__time\" >= TIMESTAMP '2026-01-02 00:00:00' AND \"__time\" < TIMESTAMP '2026-01-03 00:00:00'"
    for statement in (first, third):
        assert statement.startswith(
            f'REPLACE INTO "{DATASOURCE}"\nOVERWRITE WHERE {day}\n'
            'SELECT TIME_PARSE("date") AS "__time", "experiment", '
        )
        assert statement.count('TABLE(EXTERN(\'{"type":"inline","data":') == 1
        assert '\'{"type": "json"}\'))\nEXTEND ("experiment" VARCHAR, ' in statement
        assert statement.endswith('"schema_version" BIGINT)\nPARTITIONED BY DAY')
        assert "UNION" not in statement and f'FROM "{DATASOURCE}"' not in statement
    # the third carries the day's search rows over (and not the next day's), with the new rows
    assert inline_rows(first) == slice_rows(("search",))
    assert sorted(inline_rows(third), key=ResultRow.key) == sorted(
        [*slice_rows(("search",)), *new], key=ResultRow.key
    )
    # ...read with a plain SELECT of the day without the slice, as the reader reads
    reads = [r.body["query"] for r in fake_druid.requests if r.path == "/druid/v2/sql/"]
    carry = [q for q in reads if "NOT (" in q][-1]  # the second write read its day too
    assert carry.startswith("SELECT ") and "UNION" not in carry
    assert carry.endswith(
        f'FROM "{DATASOURCE}" WHERE {day} AND NOT ("source" = \'batch\' AND '
        '"metric_type" = \'aggregated\' AND "metric" IN (\'click\') AND "experiment" IN '
        "('exp', 'o''k'))"
    )
    tasks = [r.body for r in fake_druid.requests if r.path == "/druid/v2/sql/task"]
    assert all(t["context"]["sqlTimeZone"] == "Etc/UTC" for t in tasks)
    assert all(t["context"]["waitUntilSegmentsLoad"] is True for t in tasks)
    assert all(t["context"]["failOnEmptyInsert"] is False for t in tasks)


def test_emptying_a_day_sends_a_placeholder_that_yields_no_rows(
    druid: DruidResultsStore, fake_druid: FakeDruid
) -> None:
    druid.replace(slice_of(), slice_rows())
    druid.replace(slice_of(day=NEXT_DAY), slice_rows(date=NEXT_DAY.isoformat()))
    assert druid.replace(slice_of(), []) == 0
    last = fake_druid.statements()[-1]
    assert '"data":"{}"' in last and last.endswith(
        "\nWHERE \"date\" = '2026-01-02'\nPARTITIONED BY DAY"
    )
    assert {r.date for r in druid.read()} == {NEXT_DAY.isoformat()}
    assert {r["date"] for r in fake_druid.rows(DATASOURCE)} == {NEXT_DAY.isoformat()}


def test_only_the_three_endpoints_are_used(druid: DruidResultsStore, fake_druid: FakeDruid) -> None:
    druid.read()
    druid.replace(slice_of(), slice_rows())
    druid.replace(slice_of(), slice_rows())
    druid.read(metrics=["click"])
    paths = {r.path for r in fake_druid.requests}
    statuses = {p for p in paths if p.startswith("/druid/indexer/v1/task/")}
    assert paths - statuses == ENDPOINTS
    assert all(p.endswith("/status") for p in statuses)
    reads = [r.body for r in fake_druid.requests if r.path == "/druid/v2/sql/"]
    assert all(set(b) >= {"query", "context", "header"} for b in reads)  # pydruid's request


def test_an_empty_recompute_on_an_absent_datasource_sends_no_task(
    druid: DruidResultsStore, fake_druid: FakeDruid
) -> None:
    assert druid.replace(slice_of(), []) == 0
    assert fake_druid.statements() == []
    assert druid.read() == []


def test_status_errors_are_retried_and_back_off(fake_druid: FakeDruid, day_lock: LeaseLock) -> None:
    sleeps: list[float] = []
    fake_druid.task_delay = 0.3
    fake_druid.status_errors = 2

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        quick_sleep(seconds)

    store = DruidResultsStore(fake_druid.url, DATASOURCE, timeout=10.0, lock=day_lock, sleep=sleep)
    store.replace(slice_of(), slice_rows())
    assert len(store.read()) == 2
    assert sleeps[0] == pytest.approx(0.2) and sleeps == sorted(sleeps)
    assert all(s <= 5.0 for s in sleeps)


def test_a_task_that_outlives_the_timeout_is_reported(
    fake_druid: FakeDruid, day_lock: LeaseLock
) -> None:
    fake_druid.task_delay = 1.0
    store = DruidResultsStore(fake_druid.url, DATASOURCE, timeout=0.3, lock=day_lock)
    with pytest.raises(ResultsError, match=r"still RUNNING after 0\.3 s"):
        store.replace(slice_of(), slice_rows())


def test_the_lock_spans_the_read_the_submit_and_the_wait(fake_druid: FakeDruid) -> None:
    events: list[tuple[str, str, int]] = []

    @contextmanager
    def lock(name: str) -> Iterator[None]:
        events.append(("acquire", name, len(fake_druid.requests)))
        yield
        events.append(("release", name, len(fake_druid.requests)))

    store = DruidResultsStore(
        fake_druid.url, DATASOURCE, timeout=10.0, lock=lock, sleep=quick_sleep
    )
    store.replace(slice_of(), slice_rows())
    store.replace(slice_of(("search",)), slice_rows(("search",)))
    name = f"results/druid/{DATASOURCE}/{DAY.isoformat()}"
    assert store.lock_name(slice_of()) == name
    assert [(e[0], e[1]) for e in events] == [("acquire", name), ("release", name)] * 2
    # everything the second write sent happened while it held the lock: the existence check,
    # the read of the day's other rows, the task and its status requests
    held = fake_druid.requests[events[2][2] : events[3][2]]
    paths = [r.path for r in held]
    submitted = paths.index("/druid/v2/sql/task")
    reads = [r.body["query"] for r in held[:submitted] if r.path == "/druid/v2/sql/"]
    assert len([q for q in reads if "NOT (" in q]) == 1  # the day's other rows
    assert paths[submitted + 1 :] and all(p.endswith("/status") for p in paths[submitted + 1 :])
    assert len(fake_druid.requests) == events[3][2]  # nothing after the release


def test_submit_and_wait_can_be_called_apart(fake_druid: FakeDruid, day_lock: LeaseLock) -> None:
    """The deferrable-operator split: submit() reads and submits, wait() polls, lock held."""
    store = DruidResultsStore(fake_druid.url, DATASOURCE, 10.0, lock=day_lock, sleep=quick_sleep)
    assert store.submit(slice_of(), []) is None  # no datasource, nothing to write
    store.replace(slice_of(("search",)), slice_rows(("search",)))
    with day_lock(store.lock_name(slice_of())):
        task = store.submit(slice_of(), slice_rows())
        assert task is not None and fake_druid.tasks[task].state in ("RUNNING", "SUCCESS")
        store.wait(task)
    assert {r.metric for r in store.read()} == {"click", "search"}
    with pytest.raises(InputError, match="outside the slice"):
        store.submit(slice_of(), slice_rows(("search",)))


def test_concurrent_writers_of_one_day_keep_both_slices(
    fake_druid: FakeDruid, day_lock: LeaseLock
) -> None:
    """The lock at work: two first writes of one day, for different metrics, both survive,
    though each store has a lock of its own (they share the leases)."""
    fake_druid.task_delay = 0.2
    stores = [
        DruidResultsStore(fake_druid.url, DATASOURCE, 10.0, lock=lock, sleep=quick_sleep)
        for lock in (day_lock, LeaseLock(day_lock.url))
    ]
    jobs = [(stores[0], ("click",)), (stores[1], ("search",))]
    threads = [
        threading.Thread(target=s.replace, args=(slice_of(m), slice_rows(m))) for s, m in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.metric for r in stores[0].read()} == {"click", "search"}


def test_a_newer_schema_is_refused(druid: DruidResultsStore) -> None:
    druid.replace(slice_of(), [make_row(schema_version=SCHEMA_VERSION + 1)])
    with pytest.raises(ResultsError, match="newer than this platform"):
        druid.read()
    with pytest.raises(ResultsError, match="newer than this platform"):
        druid.replace(slice_of(("search",)), slice_rows(("search",)))


def test_a_datasource_of_an_older_schema_only_is_refused_until_migrated(
    druid: DruidResultsStore,
) -> None:
    # (The fake keeps every column; a real Druid would lack the new ones, and the read of
    # the day's other rows would fail on them.)
    druid.replace(slice_of(), [make_row(schema_version=SCHEMA_VERSION - 1)])
    with pytest.raises(ResultsError, match=f"schema version {SCHEMA_VERSION - 1}; .*migrate it"):
        druid.replace(slice_of(("search",)), slice_rows(("search",)))
    assert [r.metric for r in druid.read()] == ["click"]  # nothing was written


def test_druid_refusals_and_outages_are_results_errors(
    druid: DruidResultsStore, day_lock: LeaseLock
) -> None:
    with pytest.raises(ResultsError, match=r"HTTP 400.*PARTITIONED BY"):
        druid._send(
            'REPLACE INTO "x" OVERWRITE WHERE "__time" >= TIMESTAMP \'2026-01-01 00:00:00\''
            " AND \"__time\" < TIMESTAMP '2026-01-02 00:00:00' SELECT 1"
        )
    with pytest.raises(ResultsError, match=r"Druid SQL .* failed"):
        druid._sql("SELECT nonsense FROM nowhere")
    closed = DruidResultsStore("http://127.0.0.1:9", DATASOURCE, timeout=2.0, lock=day_lock)
    with pytest.raises(ResultsError, match="Druid"):
        closed.read()
    with pytest.raises(ResultsError, match="invalid Druid router URL"):
        DruidResultsStore("druid-router:8888", DATASOURCE, lock=day_lock)


def test_the_fake_answers_sql_like_druid(fake_druid: FakeDruid, druid: DruidResultsStore) -> None:
    druid.replace(slice_of(), slice_rows())
    url = fake_druid.url + "/druid/v2/sql"
    query = f'SELECT "__time", "metric", "n" FROM "{DATASOURCE}" WHERE "group" = \'control\''
    objects = requests.post(url, json={"query": query}, timeout=5).json()
    assert objects == [{"__time": "2026-01-02T00:00:00.000Z", "metric": "click", "n": 10}]
    arrays = requests.post(
        url, json={"query": query, "resultFormat": "array", "header": True}, timeout=5
    )
    assert arrays.json() == [["__time", "metric", "n"], ["2026-01-02T00:00:00.000Z", "click", 10]]
    lines = requests.post(url, json={"query": query, "resultFormat": "objectLines"}, timeout=5)
    assert lines.text.splitlines() == [
        '{"__time": "2026-01-02T00:00:00.000Z", "metric": "click", "n": 10}',
        "",
    ]
    refused = requests.post(url, json={"query": f'DELETE FROM "{DATASOURCE}"'}, timeout=5)
    assert refused.status_code == 400 and refused.json()["error"] == "druidException"
    unknown = requests.get(fake_druid.url + "/druid/indexer/v1/task/nope/status", timeout=5)
    assert unknown.status_code == 404
    assert (
        requests.post(fake_druid.url + "/druid/indexer/v1/task", json={}, timeout=5).status_code
        == 404
    )


def test_an_upsert_rewrites_its_days_in_one_task_under_each_days_lock(
    fake_druid: FakeDruid,
) -> None:
    taken: list[str] = []

    @contextmanager
    def lock(name: str) -> Iterator[None]:
        taken.append(name)
        yield

    store = DruidResultsStore(
        fake_druid.url, DATASOURCE, timeout=10.0, lock=lock, sleep=quick_sleep
    )
    batch = slice_rows()
    store.replace(slice_of(), batch)
    third = (DAY + timedelta(days=2)).isoformat()
    store.replace(slice_of(day=DAY + timedelta(days=2)), slice_rows(date=third))
    taken.clear()
    stream = [make_row(source="stream"), make_row(source="stream", date=third)]
    assert store.upsert(stream) == 2
    assert taken == [f"results/druid/{DATASOURCE}/2026-01-0{d}" for d in (2, 3, 4)]
    last = fake_druid.statements()[-1]
    assert (
        'OVERWRITE WHERE "__time" >= TIMESTAMP \'2026-01-02 00:00:00\' AND "__time" < '
        "TIMESTAMP '2026-01-05 00:00:00'\n" in last
    )
    assert sorted(inline_rows(last), key=ResultRow.key) == sorted(
        [*batch, *slice_rows(date=third), *stream], key=ResultRow.key
    )
    assert len(fake_druid.statements()) == 3  # one task for the whole call


def test_a_failed_upsert_leaves_the_previous_rows(
    druid: DruidResultsStore, fake_druid: FakeDruid
) -> None:
    before = slice_rows(source="stream")
    druid.upsert(before)
    fake_druid.fail_next_task()
    with pytest.raises(ResultsError, match="injected failure"):
        druid.upsert([make_row(source="stream", volume=0), make_row(source="stream", metric="x")])
    assert druid.read() == sorted(before, key=ResultRow.key)
