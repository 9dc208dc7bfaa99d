"""Engines, sessions and schema migrations for the metadata store, from a database URL.

SQLite (the embedded default) gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE``
transactions, so concurrent writers queue instead of failing or racing; its parent
directory is created. Migrations run Alembic programmatically with the scripts shipped
inside this package, so no ``alembic.ini`` is needed anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from udf.errors import MetadataError
from udf.logging import get_logger

MIGRATIONS = Path(__file__).parent / "migrations"
_log = get_logger(__name__)


def _normalise(url: str) -> str:
    """Pick the drivers the platform ships with when the URL names only the database."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise MetadataError(f"invalid metadata database URL {url!r}: {exc}") from exc
    driver = {
        "postgresql": "postgresql+psycopg",
        "mysql": "mysql+pymysql",
        "mariadb": "mariadb+pymysql",
    }
    if parsed.drivername in driver:
        parsed = parsed.set(drivername=driver[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``, configured for the backend (see the module docstring)."""
    url = _normalise(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own transactions (pysqlite's implicit BEGIN is lazy).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a read-then-write transaction cannot be overtaken.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this code."""
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def _with_engine(url_or_engine: str | Engine) -> tuple[Engine, bool]:
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return create_db_engine(url_or_engine), True


def current_revision(url_or_engine: str | Engine) -> str | None:
    """The database's migration revision, or ``None`` for an empty database."""
    engine, owned = _with_engine(url_or_engine)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise MetadataError(f"cannot read the metadata database revision: {exc}") from exc
    finally:
        if owned:
            engine.dispose()


def migrate(url_or_engine: str | Engine, revision: str = "head") -> str | None:
    """Upgrade the database to ``revision`` (default: the newest); returns the new revision."""
    engine, owned = _with_engine(url_or_engine)
    try:
        before = current_revision(engine)
        command.upgrade(_alembic_config(engine), revision)
        after = current_revision(engine)
        if before != after:
            _log.info(
                "metadata migrated", url=_safe(engine), from_revision=before, to_revision=after
            )
        return after
    except SQLAlchemyError as exc:
        raise MetadataError(f"migrating the metadata database failed: {exc}") from exc
    finally:
        if owned:
            engine.dispose()


def downgrade(url_or_engine: str | Engine, revision: str) -> str | None:
    """Downgrade the database to ``revision`` (``base`` removes every table)."""
    engine, owned = _with_engine(url_or_engine)
    try:
        command.downgrade(_alembic_config(engine), revision)
        after = current_revision(engine)
        _log.info("metadata downgraded", url=_safe(engine), to_revision=after)
        return after
    except SQLAlchemyError as exc:
        raise MetadataError(f"downgrading the metadata database failed: {exc}") from exc
    finally:
        if owned:
            engine.dispose()


def ensure_current(engine: Engine) -> None:
    """Migrate to head when the database is empty or behind; refuse one that is ahead."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    script = ScriptDirectory(str(MIGRATIONS))
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise MetadataError(
            f"the metadata database is at revision {current!r}, unknown to this version of udf "
            f"(newest known: {head!r}); upgrade udf"
        )
    if current is None:
        _log.info("metadata database empty, creating the schema", url=_safe(engine), head=head)
    else:
        _log.warning(
            "metadata database behind, migrating", url=_safe(engine), current=current, head=head
        )
    migrate(engine)


def _safe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
