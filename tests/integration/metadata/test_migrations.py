"""The migrations build exactly models.py, and tear it all down again, on every backend."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from metadata import db
from metadata.models import Base
from metadata.repository import MetadataStore


def test_upgrade_matches_models_and_downgrade_leaves_nothing(databases) -> None:
    url = databases.new()
    assert db.current_revision(url) is None
    assert db.migrate(url) == db.head_revision()

    engine = db.create_db_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()

    assert db.downgrade(url, "base") is None
    engine = db.create_db_engine(url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()

    assert db.migrate(url) == db.head_revision()  # and up again from base


def test_opening_a_store_migrates_an_empty_database(databases) -> None:
    url = databases.new()
    with MetadataStore(url) as store:
        assert store.experiments() == []
    assert db.current_revision(url) == db.head_revision()
    with MetadataStore(url) as store:  # already current: nothing to do
        assert store.metrics() == []


# Run in each spawned process through the builtin exec (test modules are not importable by
# name under --import-mode=importlib): wait for every process, then open the store at once.
_OPEN_STORE = """
try:
    from metadata.repository import MetadataStore
    barrier.wait(timeout=120)
    MetadataStore(url).close()
    results.put("ok")
except BaseException as exc:
    results.put(f"{type(exc).__name__}: {exc}")
"""


def test_processes_opening_an_empty_database_at_once_all_succeed(databases) -> None:
    # Without the migration lock, 3 of 4 processes failed on PostgreSQL and MariaDB (and
    # MariaDB, whose DDL is not transactional, could be left half-built).
    ctx = multiprocessing.get_context("spawn")
    for _ in range(2):
        url = databases.new()
        processes = 4
        barrier, results = ctx.Barrier(processes), ctx.Queue()
        env = {"url": url, "barrier": barrier, "results": results}
        workers = [ctx.Process(target=exec, args=(_OPEN_STORE, env)) for _ in range(processes)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=180) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert outcomes == ["ok"] * processes
        assert db.current_revision(url) == db.head_revision()
        with MetadataStore(url) as store:
            assert store.experiments() == []


def test_threads_opening_an_empty_database_at_once_all_succeed(databases) -> None:
    url = databases.new()
    barrier = threading.Barrier(6, timeout=60)

    def open_store(_: int) -> None:
        barrier.wait()
        MetadataStore(url).close()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(open_store, range(6)))
    assert db.current_revision(url) == db.head_revision()
    engine = db.create_db_engine(url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == set(Base.metadata.tables) | {
            "alembic_version"
        }
    finally:
        engine.dispose()


_IMPORTS_ALEMBIC = """
import sys
from metadata.repository import MetadataStore
MetadataStore(url).close()
results.put("alembic" in sys.modules)
"""


def _imports_alembic(url: str) -> bool:
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing imported yet
    results = ctx.Queue()
    worker = ctx.Process(target=exec, args=(_IMPORTS_ALEMBIC, {"url": url, "results": results}))
    worker.start()
    try:
        return results.get(timeout=120)
    finally:
        worker.join(timeout=60)


def test_alembic_is_imported_only_to_migrate(databases) -> None:
    url = databases.new()
    assert _imports_alembic(url) is True  # empty: migrated
    assert _imports_alembic(url) is False  # at head: one SELECT of alembic_version
    assert db.current_revision(url) == db.HEAD_REVISION


def test_head_revision_constant_matches_the_migration_scripts() -> None:
    assert db.head_revision() == db.HEAD_REVISION


def test_migrate_and_downgrade_hold_the_lock_and_report_revisions(databases) -> None:
    url = databases.new()
    assert db.migrate(url) == db.HEAD_REVISION
    assert db.migrate(url) == db.HEAD_REVISION  # again: nothing to do
    assert db.downgrade(url, "base") is None
    with MetadataStore(url) as store:  # an empty alembic_version table: migrated again
        assert store.metrics() == []
    assert db.current_revision(url) == db.HEAD_REVISION


def test_0003_admits_not_selected_and_its_downgrade_keeps_the_rows(databases) -> None:
    from datetime import date

    from udf.config.catalog import AggregatedMetric

    url = databases.new()
    db.migrate(url, "0002")
    with MetadataStore(url) as store:  # opening migrates to head: 0003
        store.sync_catalog([AggregatedMetric(name="m", type="aggregated", event_type="m")], [], [])
        store.set_run_state("m", date(2026, 1, 5), "not_selected", "no experiment selects it")
    assert db.downgrade(url, "0002") == "0002"
    engine = db.create_db_engine(url)
    try:
        with engine.connect() as conn:
            states = conn.exec_driver_sql("SELECT state, reason FROM metric_runs").all()
            assert [tuple(s) for s in states] == [("waiting_on_source", "no experiment selects it")]
            # the constraint 0001 made is back
            with pytest.raises(sa.exc.DBAPIError, match="ck_metric_runs_ck_metric_runs_state"):
                conn.exec_driver_sql("UPDATE metric_runs SET state = 'not_selected'")
    finally:
        engine.dispose()
    assert db.migrate(url) == db.head_revision() == db.HEAD_REVISION
