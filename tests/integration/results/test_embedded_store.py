"""The embedded store's own guarantees: its table, the schema version, errors, big slices."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from results.schema import KEY, SCHEMA_VERSION, ResultRow
from results.stores import embedded as embedded_module
from results.stores import open_store
from results.stores.druid import DruidResultsStore
from results.stores.embedded import IN_CHUNK, EmbeddedResultsStore, results, results_meta
from tests.integration.results.conftest import SERVERS
from tests.support.fake_druid import FakeDruid
from tests.support.result_rows import make_row, slice_of, slice_rows, treatment
from udf.errors import ResultsError
from udf.home import Home
from udf.settings import load_settings


@pytest.fixture(params=SERVERS)
def fresh_url(request: pytest.FixtureRequest, results_url: Callable[..., str]) -> str:
    return results_url(request.param, fresh=True)


def test_the_table_has_the_key_and_the_slice_index(embedded: EmbeddedResultsStore) -> None:
    engine = sa.create_engine(embedded.url)
    try:
        inspector = sa.inspect(engine)
        assert {c["name"] for c in inspector.get_columns("results")} == set(results.c.keys())
        uniques = inspector.get_unique_constraints("results")
        unique_indexes = [i for i in inspector.get_indexes("results") if i["unique"]]
        keys = [tuple(u["column_names"]) for u in [*uniques, *unique_indexes]]
        assert tuple(KEY) in keys
        indexes = {tuple(i["column_names"]) for i in inspector.get_indexes("results")}
        assert ("source", "metric_type", "date") in indexes
        if engine.dialect.name == "mysql":
            with engine.connect() as conn:
                collation = conn.exec_driver_sql(
                    "SELECT TABLE_COLLATION FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'results'"
                ).scalar()
            assert collation == "utf8mb4_bin"
    finally:
        engine.dispose()


def test_the_database_itself_refuses_a_second_copy(embedded: EmbeddedResultsStore) -> None:
    embedded.replace(slice_of(), [make_row()])
    engine = sa.create_engine(embedded.url)
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(results.insert(), [make_row(volume=99).to_dict()])
    finally:
        engine.dispose()
    assert embedded.read() == [make_row()]


def test_names_that_differ_only_in_case_are_different_rows(embedded: EmbeddedResultsStore) -> None:
    rows = [
        make_row(segment="os", segment_value="iOS"),
        make_row(segment="os", segment_value="ios"),
    ]
    embedded.replace(slice_of(), rows)
    assert embedded.read() == sorted(rows, key=ResultRow.key)


def test_big_slices_are_deleted_in_chunks(embedded: EmbeddedResultsStore) -> None:
    metrics = tuple(f"m{i:04d}" for i in range(IN_CHUNK + 20))
    experiments = tuple(f"e{i:04d}" for i in range(IN_CHUNK + 5))
    rows = [make_row(metric=m, experiment="e0000") for m in metrics]
    rows += [make_row(metric="m0000", experiment=e) for e in experiments[1:]]
    piece = slice_of(metrics, experiments=experiments)
    embedded.replace(piece, rows)
    assert embedded.replace(piece, rows) == len(rows)
    assert len(embedded.read()) == len(rows)
    embedded.replace(piece, [])
    assert embedded.read() == []


def test_a_newer_schema_version_is_refused(fresh_url: str) -> None:
    EmbeddedResultsStore(fresh_url).close()
    engine = sa.create_engine(fresh_url)
    with engine.begin() as conn:
        conn.execute(results_meta.update().values(value=str(SCHEMA_VERSION + 1)))
    engine.dispose()
    with pytest.raises(ResultsError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        EmbeddedResultsStore(fresh_url)


# The columns of schema version 1, written out (docs/results.md's migration note).
V1_COLUMNS = (
    "experiment", "group", "metric", "metric_type", "period_start", "period_end", "date",
    "day_in", "segment", "segment_value", "exposed", "volume", "propensity", "n", "sum",
    "sum_sq", "den_sum", "den_sum_sq", "sum_xy", "lift_abs", "lift_rel", "ci_low", "ci_high",
    "rel_ci_low", "rel_ci_high", "p_value", "p_value_adjusted", "status", "source",
    "computed_at", "schema_version",
)  # fmt: skip


def _version_1_store(url: str) -> dict:
    """A results database as version 1 left it, holding one treatment row; that row."""
    from metadata.db import create_db_engine
    from results.stores.embedded import _column

    old = sa.MetaData()
    table = sa.Table(
        "results", old, *(_column(name) for name in V1_COLUMNS),
        sa.UniqueConstraint(*KEY, name="uq_results_key"),
        mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin",
    )  # fmt: skip
    meta = results_meta.to_metadata(old)
    row = {k: v for k, v in treatment().to_dict().items() if k in V1_COLUMNS}
    row["schema_version"] = 1
    engine = create_db_engine(url)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(table.insert(), [row])
        conn.execute(meta.insert().values(name="schema_version", value="1"))
    engine.dispose()
    return row


def test_a_version_1_store_is_migrated_when_opened(fresh_url: str) -> None:
    row = _version_1_store(fresh_url)
    errors: list[BaseException] = []

    def open_store_once() -> None:
        try:
            EmbeddedResultsStore(fresh_url).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store_once) for _ in range(3)]  # all at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with EmbeddedResultsStore(fresh_url) as store:
        [old] = store.read()
        # the old values kept; the new columns at their defaults; the row follows this version
        assert {k: v for k, v in old.to_dict().items() if k in V1_COLUMNS} == {
            **row,
            "schema_version": 3,
        }
        assert (old.look, old.seq_decision, old.pre_sum, old.cuped_p_value) == (0, "", None, None)
        assert (old.multiple_groups, old.health, old.mde, old.cap) == (0, "", None, None)
        new = treatment(metric="search", look=3, seq_decision="continue", seq_p_value=0.5)
        store.replace(slice_of(("search",)), [new])
        assert store.read(metrics=["search"]) == [new]
    engine = sa.create_engine(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(results_meta)).all() == [("schema_version", "3")]
        columns = [c["name"] for c in sa.inspect(conn).get_columns("results")]
    engine.dispose()
    assert sorted(columns) == sorted(results.columns.keys())


def test_first_opens_at_the_same_time_create_the_tables_once(fresh_url: str) -> None:
    errors: list[BaseException] = []

    def open_and_write(n: int) -> None:
        try:
            with EmbeddedResultsStore(fresh_url) as store:
                store.replace(slice_of((f"m{n}",)), [make_row(metric=f"m{n}")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with EmbeddedResultsStore(fresh_url) as store:
        assert len(store.read()) == 4
    engine = sa.create_engine(fresh_url)
    with engine.connect() as conn:
        assert conn.execute(sa.select(results_meta)).all() == [("schema_version", "3")]
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["nosuchdb://x", "postgresql+psycopg://postgres@127.0.0.1:1/none"],
    ids=["unknown-dialect", "unreachable"],
)
def test_unusable_databases_are_results_errors(url: str) -> None:
    with pytest.raises(ResultsError, match="results store"):
        EmbeddedResultsStore(url)


def test_open_store_follows_the_settings(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UDF_RESULTS_STORE", raising=False)
    monkeypatch.delenv("UDF_RESULTS_URL", raising=False)
    with open_store(home, load_settings(home)) as store:
        assert isinstance(store, EmbeddedResultsStore)
        store.replace(slice_of(), slice_rows())
    assert (home.root / "results.db").exists()
    with FakeDruid() as fake:
        monkeypatch.setenv("UDF_RESULTS_STORE", "druid")
        monkeypatch.setenv("UDF_DRUID_ROUTER", fake.url)
        monkeypatch.setenv("UDF_DRUID_DATASOURCE", "elsewhere")
        with open_store(home, load_settings(home)) as store:
            assert isinstance(store, DruidResultsStore)
            assert (store.datasource, store.timeout) == ("elsewhere", 600.0)
            assert store.read() == []


def test_an_upsert_that_fails_midway_writes_nothing(
    embedded: EmbeddedResultsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = [make_row(source="stream", experiment=f"e{n}") for n in range(4)]
    embedded.upsert(before)
    monkeypatch.setattr(embedded_module, "INSERT_CHUNK", 2)
    statements: list[str] = []

    def fail_the_second_chunk(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)
        if len(statements) == 2:
            raise sa.exc.OperationalError(statement, {}, Exception("connection lost"))

    engine = embedded._engine
    sa.event.listen(engine, "before_cursor_execute", fail_the_second_chunk)
    try:
        newer = [make_row(source="stream", experiment=f"e{n}", volume=0) for n in range(4)]
        with pytest.raises(ResultsError, match=r"upserting 4 results failed: .*connection lost"):
            embedded.upsert(newer)
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_the_second_chunk)
    assert len(statements) == 2  # the first chunk went in before the failure
    assert embedded.read() == sorted(before, key=ResultRow.key)
