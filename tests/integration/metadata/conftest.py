"""Fixtures for the metadata store on every supported backend.

``backend`` runs a test on SQLite, PostgreSQL (marker ``postgres``) and MariaDB (marker
``mariadb``). Server databases are created with random names for the test session and
dropped at its end; an unreachable server fails the tests loudly instead of skipping them,
because CI guarantees the servers are up. Override the admin URLs with
``UDF_TEST_POSTGRES_URL`` / ``UDF_TEST_MARIADB_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from metadata.models import Base
from metadata.repository import MetadataStore

ADMIN_URLS = {
    "postgres": os.environ.get(
        "UDF_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    ),
    "mariadb": os.environ.get("UDF_TEST_MARIADB_URL", "mysql+pymysql://root:@127.0.0.1:3306/"),
}
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
]


class Databases:
    """Creates empty databases on one backend and drops them all at the end of the session."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self._tmp = tmp
        self._created: list[str] = []
        self._admin: sa.Engine | None = None
        if backend != "sqlite":
            self._admin = sa.create_engine(ADMIN_URLS[backend], isolation_level="AUTOCOMMIT")
            try:
                with self._admin.connect() as conn:
                    conn.exec_driver_sql("SELECT 1")
            except sa.exc.OperationalError as exc:
                self._admin.dispose()
                pytest.fail(
                    f"{backend} is not reachable at {sa.make_url(ADMIN_URLS[backend]).render_as_string()}"
                    f" ({exc.orig}); the metadata store tests need it. Start the server, or "
                    f"deselect these tests with -m 'not {backend}'.",
                    pytrace=False,
                )

    def new(self) -> str:
        """The URL of a new, empty database."""
        name = f"udf_test_{uuid.uuid4().hex[:12]}"
        if self._admin is None:
            return f"sqlite:///{self._tmp / name / 'metadata.db'}"
        with self._admin.connect() as conn:
            if self.backend == "postgres":
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:
                conn.exec_driver_sql(
                    f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )
        self._created.append(name)
        return self._admin.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as conn:
            for name in self._created:
                if self.backend == "postgres":
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        self._admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def databases(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(backend, tmp_path_factory.mktemp(f"metadata-{backend}"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def store_url(databases: Databases) -> str:
    """One migrated database per backend, shared by the store tests (wiped between tests)."""
    url = databases.new()
    MetadataStore(url).close()
    return url


class Clock:
    """A clock the tests move by hand, so lease expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store_factory(store_url: str, clock: Clock) -> Iterator[Callable[[], MetadataStore]]:
    """Opens stores (each with its own engine and connections) on the wiped shared database."""
    opened: list[MetadataStore] = []
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()

    def open_store() -> MetadataStore:
        store = MetadataStore(store_url, clock=clock)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: Callable[[], MetadataStore]) -> MetadataStore:
    return store_factory()
