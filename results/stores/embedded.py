"""The embedded results store: one SQL table on SQLite (default), PostgreSQL or MariaDB.

The ``results`` table has exactly the schema's columns, a unique key over ``KEY`` (so a row
can never be stored twice, whatever a caller does) and an index on (source, metric_type,
date), the prefix of every slice. :meth:`EmbeddedResultsStore.replace` deletes the slice and
inserts the new rows in one transaction; :meth:`EmbeddedResultsStore.upsert` inserts rows
that replace those of the same key with the database's own upsert (``ON CONFLICT DO UPDATE``
on SQLite and PostgreSQL, ``ON DUPLICATE KEY UPDATE`` on MariaDB), also in one transaction.
Both are retried when the database aborts them to break a deadlock. The database is
separate from the metadata store, so the tables are created on first use instead of by
migrations; ``results_meta`` records the schema version they follow. A database written by
newer code is refused rather than misread; one of an older version is migrated when opened
(docs/results.md, "Migration notes").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from metadata.db import create_db_engine, describe_error, is_transient, safe_url
from results.schema import (
    COLUMNS,
    FLOAT_COLUMNS,
    INTEGER_COLUMNS,
    KEY,
    SCHEMA_VERSION,
    ResultRow,
    Slice,
)
from results.stores import LockFactory
from results.stores.base import (
    TEXT_LIMITS,
    ResultsStore,
    checked_rows,
    checked_upsert,
    sort_rows,
)
from udf.errors import MetadataError, ResultsError
from udf.home import Home
from udf.logging import get_logger
from udf.settings import Settings

IN_CHUNK = 500  # values per IN (...) list
INSERT_CHUNK = 1000  # rows per executemany
TRANSIENT_ATTEMPTS = 5
_BIG = frozenset({"period_start", "period_end", "computed_at", "exposed", "volume",
                  "propensity", "n"})  # fmt: skip
# Columns added after version 1 that are not nullable: the migration adds them to a filled
# table, so the database fills the existing rows with these defaults (SQL literals).
_SERVER_DEFAULTS = {"look": "0", "seq_decision": "''", "multiple_groups": "0", "health": "''"}

_log = get_logger(__name__)
metadata = sa.MetaData()


def _column(name: str) -> sa.Column[Any]:
    kind: Any
    if name in INTEGER_COLUMNS:
        kind = sa.BigInteger() if name in _BIG else sa.Integer()
    elif name in FLOAT_COLUMNS:
        kind = sa.Double(asdecimal=False)
    else:
        kind = sa.String(TEXT_LIMITS[name])
    optional = name in FLOAT_COLUMNS and name not in ("sum", "sum_sq")
    default = _SERVER_DEFAULTS.get(name)
    server_default = None if default is None else sa.text(default)
    return sa.Column(name, kind, nullable=optional, server_default=server_default)


results = sa.Table(
    "results",
    metadata,
    *(_column(name) for name in COLUMNS),
    sa.UniqueConstraint(*KEY, name="uq_results_key"),
    sa.Index("ix_results_slice", "source", "metric_type", "date"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)
results_meta = sa.Table(
    "results_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(64), nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)


class EmbeddedResultsStore(ResultsStore):
    """Results in a SQL database given by a SQLAlchemy URL; tables are created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._engine = create_db_engine(url)
        except MetadataError as exc:
            cause = describe_error(exc.__cause__) if exc.__cause__ else str(exc)
            raise ResultsError(f"cannot open the results store {safe_url(url)}: {cause}") from exc
        try:
            self._prepare()
        except BaseException:
            self._engine.dispose()
            raise

    def close(self) -> None:
        self._engine.dispose()

    def replace(self, slice: Slice, rows: Sequence[ResultRow]) -> int:
        checked = checked_rows(slice, rows)

        def work(conn: sa.Connection) -> None:
            for where in _slice_filters(slice):
                conn.execute(results.delete().where(*where))
            _insert_rows(conn, checked)

        self._transaction(f"replacing {_describe(slice)}", work)
        return len(checked)

    def upsert(self, rows: Sequence[ResultRow]) -> int:
        # In key order, so that concurrent upserts lock shared rows in the same order.
        checked = [row.to_dict() for row in sort_rows(checked_upsert(rows))]
        if checked:
            statement = _upsert_statement(self._engine.dialect.name)
            self._transaction(
                f"upserting {len(checked)} results",
                lambda conn: _insert(conn, statement, checked),
            )
        return len(checked)

    def _transaction(self, what: str, work: Callable[[sa.Connection], None]) -> None:
        """``work`` in one transaction, run again if the database aborted it to break a
        deadlock or (PostgreSQL) a concurrent recompute of the same slice committed rows
        that its DELETE could not see: the next attempt deletes them."""
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                with self._engine.begin() as conn:
                    work(conn)
                return
            except DBAPIError as exc:
                retry = is_transient(exc) or isinstance(exc, IntegrityError)
                if attempt < TRANSIENT_ATTEMPTS and retry:
                    time.sleep(0.05 * 2**attempt)
                    continue
                raise self._error(what, exc) from exc
            except SQLAlchemyError as exc:
                raise self._error(what, exc) from exc

    def read(
        self,
        *,
        source: str | None = None,
        metric_type: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
        metrics: Sequence[str] | None = None,
        experiments: Sequence[str] | None = None,
    ) -> list[ResultRow]:
        c = results.c
        where: list[Any] = []
        if source is not None:
            where.append(c.source == source)
        if metric_type is not None:
            where.append(c.metric_type == metric_type)
        if date_from is not None:
            where.append(c.date >= date_from.isoformat())
        if date_to is not None:
            where.append(c.date <= date_to.isoformat())
        if metrics is not None:
            where.append(c.metric.in_(list(metrics)))
        if experiments is not None:
            where.append(c.experiment.in_(list(experiments)))
        try:
            with self._engine.connect() as conn:
                found = conn.execute(sa.select(results).where(*where)).mappings().all()
        except SQLAlchemyError as exc:
            raise self._error("reading results", exc) from exc
        return sort_rows(ResultRow.from_dict(dict(row)) for row in found)

    def _prepare(self) -> None:
        """Create the tables if missing and check the schema version they were written with."""
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                with self._engine.begin() as conn:
                    metadata.create_all(conn)
                break
            except SQLAlchemyError as exc:
                # Another process is creating them at the same moment (MySQL's DDL is not
                # transactional): fine once they all exist; create what is missing again.
                if self._tables_exist():
                    break
                if attempt == TRANSIENT_ATTEMPTS:
                    raise self._error("creating the results tables", exc) from exc
                time.sleep(0.05 * attempt)
        try:
            version = self._schema_version()
        except SQLAlchemyError as exc:
            raise self._error("reading the results schema version", exc) from exc
        if version > SCHEMA_VERSION:
            raise ResultsError(
                f"the results store {safe_url(self._engine)} holds schema version {version}, "
                f"newer than this platform's {SCHEMA_VERSION}: upgrade the platform to use it"
            )
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Bring an older table to this schema: add the columns it lacks (existing rows get
        0, ``""`` or null in them), mark its rows and ``results_meta`` with this version.

        Every change since version 1 only adds columns, and each step is idempotent: several
        processes opening the store at once, or a MariaDB migration interrupted between its
        (non-transactional) ``ALTER`` statements, end with the same table.
        """
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                with self._engine.begin() as conn:
                    present = {c["name"] for c in sa.inspect(conn).get_columns("results")}
                    missing = [
                        str(sa.schema.CreateColumn(column).compile(dialect=conn.dialect))
                        for column in results.columns if column.name not in present
                    ]  # fmt: skip
                    if conn.dialect.name == "sqlite":  # one column per ALTER, in a transaction
                        for ddl in missing:
                            conn.execute(sa.text(f"ALTER TABLE results ADD COLUMN {ddl}"))
                    elif missing:  # one statement; IF NOT EXISTS for concurrent migrations
                        adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {ddl}" for ddl in missing)
                        conn.execute(sa.text(f"ALTER TABLE results {adds}"))
                    old = results.c.schema_version < SCHEMA_VERSION
                    conn.execute(results.update().where(old).values(schema_version=SCHEMA_VERSION))
                    conn.execute(
                        results_meta.update()
                        .where(results_meta.c.name == "schema_version")
                        .values(value=str(SCHEMA_VERSION))
                    )
                _log.info("results store migrated", store=safe_url(self._engine),
                          from_version=version, to_version=SCHEMA_VERSION)  # fmt: skip
                return
            except SQLAlchemyError as exc:
                # Another process migrating at the same moment added a column first.
                try:
                    if self._schema_version() == SCHEMA_VERSION:
                        return
                except SQLAlchemyError:
                    pass
                if attempt == TRANSIENT_ATTEMPTS:
                    raise self._error(
                        f"migrating the results tables from schema version {version} to "
                        f"{SCHEMA_VERSION}", exc,
                    ) from exc  # fmt: skip
                time.sleep(0.05 * attempt)

    def _tables_exist(self) -> bool:
        try:
            return set(metadata.tables) <= set(sa.inspect(self._engine).get_table_names())
        except SQLAlchemyError:
            return False

    def _schema_version(self) -> int:
        query = sa.select(results_meta.c.value).where(results_meta.c.name == "schema_version")
        with self._engine.begin() as conn:
            value = conn.execute(query).scalar()
            if value is not None:
                return int(value)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    results_meta.insert().values(name="schema_version", value=str(SCHEMA_VERSION))
                )
            return SCHEMA_VERSION
        except IntegrityError:  # written by a concurrent first opener
            with self._engine.begin() as conn:
                return int(conn.execute(query).scalar_one())

    def _error(self, what: str, exc: BaseException) -> ResultsError:
        return ResultsError(
            f"results store {safe_url(self._engine)}: {what} failed: {describe_error(exc)}"
        )


def _insert(conn: sa.Connection, statement: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), INSERT_CHUNK):
        conn.execute(statement, rows[start : start + INSERT_CHUNK])


def _insert_rows(conn: sa.Connection, rows: Sequence[ResultRow]) -> None:
    """Insert ``rows``, a chunk at a time. On SQLite the driver's ``executemany`` gets the
    rows' values as tuples: SQLAlchemy's per-row parameter handling (no type conversion is
    needed: every value is a Python int, float, str or None) took most of the time of a
    slice of millions of rows. Other databases keep SQLAlchemy's batched inserts."""
    if conn.dialect.name != "sqlite":
        _insert(conn, results.insert(), [row.to_dict() for row in rows])
        return
    compiled = results.insert().compile(dialect=conn.dialect)
    assert compiled.positiontup == list(COLUMNS), "the results table's columns are the schema's"
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        conn.exec_driver_sql(compiled.string, [row.values() for row in chunk])


def _upsert_statement(dialect: str) -> Any:
    """An INSERT of the results columns that updates the row of the same key instead."""
    values = [name for name in COLUMNS if name not in KEY]
    if dialect in ("mysql", "mariadb"):
        insert = mysql.insert(results)
        return insert.on_duplicate_key_update({name: insert.inserted[name] for name in values})
    if dialect not in ("postgresql", "sqlite"):
        raise ResultsError(f"the results store cannot upsert on {dialect}")
    module = postgresql if dialect == "postgresql" else sqlite
    upsert = module.insert(results)
    return upsert.on_conflict_do_update(
        index_elements=list(KEY), set_={name: upsert.excluded[name] for name in values}
    )


def _slice_filters(slice: Slice) -> Iterator[list[Any]]:
    """WHERE clauses that together select exactly the slice's rows (IN lists in chunks)."""
    c = results.c
    base = [c.source == slice.source, c.metric_type == slice.metric_type, c.date == slice.day]
    experiments: list[list[str] | None] = (
        [None] if slice.experiments is None else list(_chunks(slice.experiments))
    )
    for metrics in _chunks(slice.metrics):
        for chunk in experiments:
            where = [*base, c.metric.in_(metrics)]
            if chunk is not None:
                where.append(c.experiment.in_(chunk))
            yield where


def _chunks(values: Sequence[str]) -> Iterator[list[str]]:
    unique = sorted(set(values))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start : start + IN_CHUNK]


def _describe(slice: Slice) -> str:
    return f"the {slice.source} {slice.metric_type} results of {slice.day}"


def from_settings(
    home: Home, settings: Settings, *, lock: LockFactory | None = None
) -> ResultsStore:
    """The embedded store at ``settings.results.url`` (default ``<home>/results.db``).

    The database serialises writers itself, so ``lock`` is not needed.
    """
    return EmbeddedResultsStore(settings.results_url(home))
