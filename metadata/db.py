"""Engines, sessions and schema migrations for the metadata store, from a database URL.

SQLite (the embedded default) gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE``
transactions, so concurrent writers queue instead of failing or racing; its parent
directory is created. A new SQLite file is created whole (a temporary database linked into
place) and an existing one is only ever opened, never created by the open, so an empty
(0-byte) file can only be a truncated database: it is refused, not silently made anew. A
file or directory this process may not write to (a read-only home) is opened read-only,
so reading commands work there. Migrations run Alembic programmatically with the scripts shipped
inside this package, so no ``alembic.ini`` is needed anywhere.

Opening a store reads ``alembic_version`` with a plain SELECT and imports Alembic only when
the database is not at :data:`HEAD_REVISION`. Every migration (automatic or ``udf db``)
runs under a lock held for the whole check-and-migrate: ``pg_advisory_lock`` on PostgreSQL,
``GET_LOCK`` on MySQL/MariaDB, the ``BEGIN IMMEDIATE`` write lock on SQLite; the revision
is read again once the lock is held, so processes opening an empty database at the same
time migrate it once and the others wait, then find it current.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from udf.errors import MetadataError
from udf.logging import get_logger

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration shipped with this code; a test checks it against the scripts.
HEAD_REVISION = "0004"
# How long to wait for another process's migration before giving up.
MIGRATION_LOCK_TIMEOUT = 300
_PG_MIGRATION_LOCK = 0x7564665F6D696772  # b"udf_migr": advisory locks are per database
_MYSQL_MIGRATION_LOCK = "udf_migrate"  # GET_LOCK is server-wide: the database name is appended
# Deadlock / lock wait timeout (MySQL, MariaDB); serialization failure / deadlock (PostgreSQL).
_MYSQL_TRANSIENT = frozenset({1213, 1205})
_PG_TRANSIENT = frozenset({"40001", "40P01"})
# How long a store waits for a server this process has already talked to to come back (a
# restart).
RECONNECT_SECONDS = 60.0
# The servers (URLs, password masked) this process has connected to: the reconnect wait is
# for them only, so a wrong URL fails at once but a store opened mid-restart waits too.
_REACHED: set[str] = set()
_log = get_logger(__name__)


def describe_error(exc: BaseException) -> str:
    """One line for a database error: the driver's message, without SQL text or links."""
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    if orig is not None:
        args: tuple[Any, ...] = getattr(orig, "args", ())
        if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
            message = f"{args[1]} (error {args[0]})"  # PyMySQL: (code, message)
        else:
            message = str(orig)
    else:
        message = str(exc)
    message = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", message)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    first = lines[0] if lines else type(orig or exc).__name__
    return first if len(first) <= 500 else first[:497] + "..."


def is_disconnect(exc: BaseException) -> bool:
    """Whether the error is the server going away (a restart, a dropped connection): the
    transaction did not happen and may run again once the server is back."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None) or ""
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


def is_transient(exc: BaseException) -> bool:
    """Whether the database aborted the transaction to break a deadlock or a conflict."""
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in _PG_TRANSIENT:
        return True
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return bool(args) and isinstance(args[0], int) and args[0] in _MYSQL_TRANSIENT


def safe_url(url_or_engine: str | Engine) -> str:
    """The URL with its password masked, for messages and logs."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine.url.render_as_string(hide_password=True)
    try:
        return make_url(url_or_engine).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", url_or_engine)


def _normalise(url: str) -> str:
    """Pick the drivers the platform ships with when the URL names only the database."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise MetadataError(
            f"invalid metadata database URL {safe_url(url)!r}: {describe_error(exc)}"
        ) from exc
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
    try:
        return _create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise MetadataError(
            f"cannot use the metadata database {safe_url(url)}: {describe_error(exc)}"
        ) from exc


def _create_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # pool_pre_ping: a connection the server dropped (a restart) is replaced at checkout.
        server = create_engine(url, pool_pre_ping=True, **kwargs)
        _reconnect_while_restarting(server)
        return server
    read_only = False
    if parsed.database and parsed.database != ":memory:" and "uri" not in parsed.query:
        path = Path(parsed.database).expanduser().absolute()
        read_only = _sqlite_file(path)
        kwargs.setdefault("creator", _sqlite_connector(path, read_only))
    engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own transactions (pysqlite's implicit BEGIN is lazy).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not read_only:
            _set_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: a read-then-write transaction cannot be overtaken.
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _reconnect_while_restarting(engine: Engine) -> None:
    """New connections wait up to :data:`RECONNECT_SECONDS` for a server this process has
    already reached (it is restarting), whichever engine reached it: a store opened while
    the server restarts waits as well. A server never reached fails at once, so a wrong URL
    or a server that was never up is reported without delay."""
    server = safe_url(engine)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        deadline = time.monotonic() + RECONNECT_SECONDS
        delay = 0.1
        while True:
            try:
                connection = dialect.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                if server not in _REACHED or time.monotonic() + delay > deadline:
                    raise
                _log.warning("metadata.reconnect", url=server, error=str(exc).strip()[:200])
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            _REACHED.add(server)
            return connection


def _sqlite_file(path: Path) -> bool:
    """Check (or create) the database file at ``path``; whether it must be opened read-only."""
    if path.exists():
        if path.is_file() and path.stat().st_size == 0:
            raise MetadataError(
                f"{path} is empty (0 bytes): it is not a database but a truncated one; restore "
                "it from a backup, or delete it to start with an empty store"
            )
        return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
        raise MetadataError(f"{path} does not exist, and its folder is read-only")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        new = sqlite3.connect(tmp)
        try:
            new.execute("PRAGMA journal_mode=WAL")  # writes the header: the file is a database
        finally:
            new.close()
        try:
            os.link(tmp, path)  # atomic, and never over a database another process just made
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise MetadataError(f"cannot create the database {path}: {reason}") from exc
    return False


def _sqlite_connector(path: Path, read_only: bool) -> Callable[[], sqlite3.Connection]:
    """Connections that never create the file (``mode=rw``), or read-only ones.

    Read-only SQLite still needs to create the WAL index beside the file; where it cannot (a
    read-only directory), the file is read as it is (``immutable``): don't let another
    process write it meanwhile.
    """
    target = f"file:{quote(str(path))}"

    def connect() -> sqlite3.Connection:
        if not read_only:
            return sqlite3.connect(
                f"{target}?mode=rw", uri=True, timeout=30, check_same_thread=False
            )
        conn = sqlite3.connect(f"{target}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1")
            return conn
        except sqlite3.OperationalError:
            conn.close()
            return sqlite3.connect(
                f"{target}?mode=ro&immutable=1", uri=True, check_same_thread=False
            )

    return connect


def _set_wal(cursor: Any) -> None:
    """Switch to WAL, waiting for other connections doing the same on a brand-new file.

    The switch needs an exclusive lock and SQLite reports "database is locked" at once
    instead of calling the busy handler, so several processes creating the database together
    would fail; once the file is in WAL mode the pragma is a no-op.
    """
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.05))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(conn: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option(
        "sqlalchemy.url", conn.engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    cfg.attributes["connection"] = conn  # env.py runs on it, inside our transaction and lock
    return cfg


def head_revision() -> str:
    """The newest migration shipped with this code, as Alembic's scripts say."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def _with_engine(url_or_engine: str | Engine) -> tuple[Engine, bool]:
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return create_db_engine(url_or_engine), True


def _read_revision(conn: Connection) -> str | None:
    """``alembic_version``'s revision by a plain SELECT (no Alembic import); None if empty."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    if len(versions) > 1:
        raise MetadataError(
            f"the metadata database has several revisions ({', '.join(sorted(versions))}); "
            "udf migrations are linear, so it was changed by something else"
        )
    return versions[0] if versions else None


def current_revision(url_or_engine: str | Engine) -> str | None:
    """The database's migration revision, or ``None`` for an empty database."""
    engine, owned = _with_engine(url_or_engine)
    try:
        with engine.connect() as conn:
            return _read_revision(conn)
    except SQLAlchemyError as exc:
        raise MetadataError(
            f"cannot read the revision of the metadata database {safe_url(engine)}: "
            f"{describe_error(exc)}"
        ) from exc
    finally:
        if owned:
            engine.dispose()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction, holding the database's migration lock until the end.

    The transaction is committed when the block ends normally and rolled back otherwise
    (MySQL/MariaDB commit each DDL statement anyway, which is why the lock matters there).
    """
    with engine.connect() as conn:
        backend = engine.dialect.name
        locked = False
        try:
            if backend == "postgresql":
                with conn.begin():  # SET LOCAL bounds the wait; the lock outlives the commit
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}s'")
                    try:
                        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                    except DBAPIError as exc:
                        if getattr(exc.orig, "sqlstate", None) == "55P03":
                            raise _lock_timeout(engine) from exc
                        raise
                locked = True
            elif backend in ("mysql", "mariadb"):
                with conn.begin():
                    got = conn.execute(
                        text("SELECT GET_LOCK(:name, :timeout)"),
                        {"name": _mysql_lock_name(engine), "timeout": MIGRATION_LOCK_TIMEOUT},
                    ).scalar()
                if got != 1:
                    raise _lock_timeout(engine)
                locked = True
            # SQLite: the transaction below starts with BEGIN IMMEDIATE, the database's
            # write lock, held until it ends (other openers wait on the busy timeout).
            with conn.begin():
                yield conn
        finally:
            if locked:
                _unlock(conn, backend, engine)


def _mysql_lock_name(engine: Engine) -> str:
    return f"{_MYSQL_MIGRATION_LOCK}.{engine.url.database or ''}"[:64]


def _unlock(conn: Connection, backend: str, engine: Engine) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
        with conn.begin():
            if backend == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
            else:
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _mysql_lock_name(engine)})
    except SQLAlchemyError:  # the connection is gone, and its session lock with it
        conn.invalidate()


def _lock_timeout(engine: Engine) -> MetadataError:
    return MetadataError(
        f"gave up after {MIGRATION_LOCK_TIMEOUT}s waiting for another process to finish "
        f"migrating the metadata database {safe_url(engine)}"
    )


def migrate(url_or_engine: str | Engine, revision: str = "head") -> str | None:
    """Upgrade the database to ``revision`` (default: the newest); returns the new revision."""
    from alembic import command

    engine, owned = _with_engine(url_or_engine)
    try:
        with _migration_lock(engine) as conn:
            before = _read_revision(conn)
            command.upgrade(_alembic_config(conn), revision)
            after = _read_revision(conn)
        if before != after:
            _log.info(
                "metadata migrated", url=safe_url(engine), from_revision=before, to_revision=after
            )
        return after
    except SQLAlchemyError as exc:
        raise MetadataError(
            f"migrating the metadata database {safe_url(engine)} failed: {describe_error(exc)}"
        ) from exc
    finally:
        if owned:
            engine.dispose()


def downgrade(url_or_engine: str | Engine, revision: str) -> str | None:
    """Downgrade the database to ``revision`` (``base`` removes every table)."""
    from alembic import command

    engine, owned = _with_engine(url_or_engine)
    try:
        with _migration_lock(engine) as conn:
            command.downgrade(_alembic_config(conn), revision)
            after = _read_revision(conn)
        _log.info("metadata downgraded", url=safe_url(engine), to_revision=after)
        return after
    except SQLAlchemyError as exc:
        raise MetadataError(
            f"downgrading the metadata database {safe_url(engine)} failed: {describe_error(exc)}"
        ) from exc
    finally:
        if owned:
            engine.dispose()


def ensure_current(engine: Engine) -> None:
    """Migrate to head when the database is empty or behind; refuse one that is ahead.

    The common case (already at :data:`HEAD_REVISION`) is one SELECT and no Alembic import.
    """
    if current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    try:
        with _migration_lock(engine) as conn:
            current = _read_revision(conn)  # again: another process may have just migrated
            head = head_revision()
            if current == head:
                return
            if current is not None and current not in _known_revisions():
                raise MetadataError(
                    f"the metadata database is at revision {current!r}, unknown to this version "
                    f"of udf (newest known: {head!r}); upgrade udf"
                )
            if current is None:
                _log.info(
                    "metadata database empty, creating the schema", url=safe_url(engine), head=head
                )
            else:
                _log.warning(
                    "metadata database behind, migrating",
                    url=safe_url(engine), current=current, head=head,
                )  # fmt: skip
            command.upgrade(_alembic_config(conn), "head")
            after = _read_revision(conn)
        _log.info(
            "metadata migrated", url=safe_url(engine), from_revision=current, to_revision=after
        )
    except SQLAlchemyError as exc:
        raise MetadataError(
            f"migrating the metadata database {safe_url(engine)} failed: {describe_error(exc)}"
        ) from exc
