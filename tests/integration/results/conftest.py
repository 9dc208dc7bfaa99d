"""Results stores under test: embedded on SQLite, PostgreSQL and MariaDB, and Druid (fake).

Server databases come from the metadata tests' :class:`Databases` (random names, dropped at
the end of the session; an unreachable server fails loudly). Druid is
:class:`tests.support.fake_druid.FakeDruid`, a local HTTP server, started per test; the Druid
stores lock their days with the platform's lease lock, on a SQLite metadata store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from metadata.repository import MetadataStore
from results.stores.base import ResultsStore
from results.stores.druid import DruidResultsStore
from results.stores.embedded import EmbeddedResultsStore, metadata
from results.stores.locks import LeaseLock
from tests.integration.metadata.conftest import Databases
from tests.support.fake_druid import FakeDruid

SERVERS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]
STORES = [*SERVERS, pytest.param("druid", id="druid")]
DATASOURCE = "udf_results"


def quick_sleep(seconds: float) -> None:
    """Poll the fake's tasks every 20 ms at most instead of Druid's back-off (tests only)."""
    time.sleep(min(seconds, 0.02))


@pytest.fixture(scope="session")
def results_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """``results_url(backend)``: the session's database on that backend, created on first
    use; ``results_url(backend, fresh=True)``: a new empty one. All dropped at the end."""
    servers: dict[str, Databases] = {}
    urls: dict[str, str] = {}

    def url_for(backend: str, fresh: bool = False) -> str:
        if backend not in servers:
            servers[backend] = Databases(backend, tmp_path_factory.mktemp(f"results-{backend}"))
        if fresh:
            return servers[backend].new().replace("metadata.db", "results.db")
        if backend not in urls:
            urls[backend] = servers[backend].new().replace("metadata.db", "results.db")
        return urls[backend]

    yield url_for
    for databases in servers.values():
        databases.drop_all()


@pytest.fixture(scope="session")
def day_lock(tmp_path_factory: pytest.TempPathFactory) -> LeaseLock:
    """The Druid stores' lock: leases in the session's SQLite metadata store."""
    url = f"sqlite:///{tmp_path_factory.mktemp('leases') / 'metadata.db'}"
    MetadataStore(url).close()  # migrated once, up front
    return LeaseLock(url)


def open_wiped(url: str) -> EmbeddedResultsStore:
    """The embedded store at ``url`` with its rows deleted (the schema version is kept)."""
    store = EmbeddedResultsStore(url)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(metadata.tables["results"].delete())
    finally:
        engine.dispose()
    return store


@pytest.fixture
def fake_druid() -> Iterator[FakeDruid]:
    with FakeDruid() as druid:
        yield druid


@pytest.fixture(params=SERVERS)
def embedded(
    request: pytest.FixtureRequest, results_url: Callable[..., str]
) -> Iterator[EmbeddedResultsStore]:
    store = open_wiped(results_url(request.param))
    yield store
    store.close()


@pytest.fixture
def druid(fake_druid: FakeDruid, day_lock: LeaseLock) -> Iterator[DruidResultsStore]:
    store = DruidResultsStore(
        fake_druid.url, DATASOURCE, timeout=10.0, lock=day_lock, sleep=quick_sleep
    )
    yield store
    store.close()


@pytest.fixture(params=STORES)
def store(
    request: pytest.FixtureRequest, results_url: Callable[..., str], day_lock: LeaseLock
) -> Iterator[ResultsStore]:
    """Every store in turn: the behaviour the contract §4 asks of both."""
    if request.param == "druid":
        with FakeDruid() as fake:
            druid = DruidResultsStore(
                fake.url, DATASOURCE, timeout=10.0, lock=day_lock, sleep=quick_sleep
            )
            yield druid
            druid.close()
        return
    embedded = open_wiped(results_url(request.param))
    yield embedded
    embedded.close()
