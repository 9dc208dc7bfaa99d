"""Writers in separate OS processes never lose each other's work (the contract §4).

Three spawned processes, each opening the store as the platform does
(``open_store(home, settings)``), write different metrics of the same day at the same time,
several rounds each: on the embedded store on SQLite, PostgreSQL and MariaDB, and on the
Druid store against the fake Druid, where every write rewrites the whole day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import pytest

from results.schema import ResultRow
from results.stores import open_store
from results.stores.base import ResultsStore
from tests.integration.results.conftest import DATASOURCE, STORES
from tests.support import results_writers
from tests.support.fake_druid import FakeDruid
from tests.support.result_rows import slice_rows
from udf.home import Home
from udf.settings import Settings

PROCESSES, ROUNDS = 3, 3
METRICS = tuple(f"m{n}" for n in range(PROCESSES))


@pytest.fixture(scope="module")
def writers() -> Iterator[Pool]:
    with results_writers.pool(PROCESSES) as pool:
        yield pool


@pytest.fixture(params=STORES)
def shared(
    request: pytest.FixtureRequest, results_url: Callable[..., str], tmp_path: Path
) -> Iterator[tuple[Home, dict[str, Any]]]:
    """A platform home and the settings of one store, for every writer and the reader."""
    home = Home(tmp_path).ensure()
    if request.param != "druid":
        yield (
            home,
            {"results": {"store": "embedded", "url": results_url(request.param, fresh=True)}},
        )
        return
    with FakeDruid(task_delay=0.1) as fake:
        druid = {"router": fake.url, "datasource": DATASOURCE, "timeout_seconds": 30}
        yield home, {"results": {"store": "druid", "druid": druid}}


def run(writers: Pool, home: Home, settings: dict[str, Any], *, upsert: bool) -> None:
    jobs = [(str(home.root), settings, metric, ROUNDS, upsert) for metric in METRICS]
    pids = writers.starmap(results_writers.write, jobs, chunksize=1)
    assert len(set(pids)) == PROCESSES  # side by side, each in its own process


def stored(home: Home, settings: dict[str, Any]) -> list[ResultRow]:
    store: ResultsStore
    with open_store(home, Settings.model_validate(settings)) as store:
        return store.read()


def summary(rows: list[ResultRow]) -> list[tuple[str, str, str, int]]:
    """Which rows there are, and which round wrote each: what a lost write shows in."""
    return sorted((r.source, r.metric, r.group, r.computed_at) for r in rows)


def test_processes_writing_slices_of_one_day_keep_every_slice(
    writers: Pool, shared: tuple[Home, dict[str, Any]]
) -> None:
    run(writers, *shared, upsert=False)
    last = slice_rows(METRICS, computed_at=ROUNDS - 1)
    rows = stored(*shared)
    assert summary(rows) == summary(last)
    assert rows == sorted(last, key=ResultRow.key)


def test_processes_upserting_and_replacing_lose_nothing(
    writers: Pool, shared: tuple[Home, dict[str, Any]]
) -> None:
    run(writers, *shared, upsert=True)
    rows = stored(*shared)
    batch = slice_rows(METRICS, computed_at=ROUNDS - 1)
    stream = slice_rows(METRICS, source="stream", computed_at=ROUNDS - 1)
    assert summary([r for r in rows if r.metric != "shared"]) == summary([*batch, *stream])
    assert [r for r in rows if r.metric != "shared"] == sorted([*batch, *stream], key=ResultRow.key)
    [common] = [r for r in rows if r.metric == "shared"]  # one copy, whoever wrote it last
    assert common.computed_at == ROUNDS - 1
