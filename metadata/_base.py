"""The store's plumbing shared by its parts: engine, clock and one-transaction sessions.

:class:`~metadata.repository.MetadataStore` is assembled from this base and the mixins in
``_runs`` and ``_leases``, so no module grows past a few hundred lines; the ORM stays inside
the ``metadata`` package.
"""

from __future__ import annotations

import functools
import inspect
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from metadata.db import (
    create_db_engine,
    describe_error,
    ensure_current,
    is_disconnect,
    is_transient,
    session_factory,
)
from metadata.types import utcnow
from udf.errors import MetadataError
from udf.logging import get_logger

T = TypeVar("T")
_log = get_logger(__name__)
# Attempts at a transaction the database aborts to break a deadlock or serialization conflict.
TRANSIENT_ATTEMPTS = 5
# Attempts at creating a row that a concurrent caller may create first (then it exists).
RACE_ATTEMPTS = 3
# Attempts at a transaction the server dropped (a restart), each after reconnecting.
DISCONNECT_ATTEMPTS = 5


class StoreBase:
    """Opens (and migrates) the database; each public method of the store is one ``_tx``."""

    def __init__(
        self, url: str, *, clock: Callable[[], datetime] = utcnow, migrate: bool = True
    ) -> None:
        self.url = url
        self._clock = clock
        self._engine = create_db_engine(url)
        try:
            if migrate:  # a store opened while the server restarts reads its revision again
                _again_on_disconnect("ensure_current", lambda: ensure_current(self._engine))
        except BaseException:
            self._engine.dispose()
            raise
        self._sessions = session_factory(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error.

        A database error becomes one :class:`MetadataError` line (a damaged SQLite file
        says "database disk image is malformed"), except a duplicate key, which the callers
        that expect one handle.
        """
        try:
            with self._sessions.begin() as session:
                yield session
        except IntegrityError:
            raise
        except DBAPIError as exc:
            raise MetadataError(f"metadata store error: {describe_error(exc)}") from exc

    def _retrying(
        self, work: Callable[[Session], T], what: str, *, duplicates_are_races: bool = False
    ) -> T:
        """``work`` in one transaction, run again when the database aborted it as a deadlock
        victim or a serialization failure (MySQL/MariaDB 1213, 1205; PostgreSQL 40P01,
        40001), at most :data:`TRANSIENT_ATTEMPTS` times with a short random back-off, and
        when the server dropped the connection (a restart), at most
        :data:`DISCONNECT_ATTEMPTS` times.

        With ``duplicates_are_races``, a duplicate key means a concurrent caller created the
        same row first, so the work goes again too (and then finds that row, up to
        :data:`RACE_ATTEMPTS` times); otherwise :class:`~sqlalchemy.exc.IntegrityError` is
        left to the caller, which knows what a duplicate key means. Any other database error
        becomes a :class:`MetadataError`.
        """
        transient = races = disconnects = 0
        while True:
            try:
                with self._sessions.begin() as session:
                    return work(session)
            except IntegrityError as exc:
                races += 1
                if not duplicates_are_races:
                    raise
                if races == RACE_ATTEMPTS:
                    raise MetadataError(f"{what}: {describe_error(exc)}") from exc
            except DBAPIError as exc:
                if is_disconnect(exc) and disconnects < DISCONNECT_ATTEMPTS:
                    # The server went away mid-transaction (a restart): nothing was committed;
                    # the next attempt reconnects (waiting for the server) and runs it again.
                    disconnects += 1
                    time.sleep(0.1 * 2**disconnects)
                    continue
                transient += 1
                if transient == TRANSIENT_ATTEMPTS or not is_transient(exc):
                    raise MetadataError(f"{what}: {describe_error(exc)}") from exc
                time.sleep(random.uniform(0, 0.01 * 2**transient))


def _again_on_disconnect(what: str, work: Callable[[], T]) -> T:
    """``work()``, run again when the server dropped its connection (a restart)."""
    attempt = 0
    while True:
        try:
            return work()
        except (MetadataError, DBAPIError) as exc:
            cause = exc if isinstance(exc, DBAPIError) else exc.__cause__
            if cause is None or attempt >= DISCONNECT_ATTEMPTS or not is_disconnect(cause):
                raise
            attempt += 1
            _log.warning("metadata.retry_after_disconnect", method=what,
                         attempt=attempt, error=describe_error(cause))  # fmt: skip
            time.sleep(0.1 * 2**attempt)


def _reconnecting(method: Callable[..., T]) -> Callable[..., T]:
    """``method`` run again when the server dropped its connection (a restart)."""

    @functools.wraps(method)
    def call(self: StoreBase, *args: Any, **kwargs: Any) -> T:
        return _again_on_disconnect(method.__name__, lambda: method(self, *args, **kwargs))

    return call


def retry_on_disconnect(cls: type[StoreBase]) -> None:
    """Make every public method of the store (each one transaction) run again, whole, when
    the database server dropped the connection under it: a restarted PostgreSQL or MariaDB
    aborts the open transactions, so nothing of the first attempt was committed, and the
    next attempt reconnects once the server is back (:func:`metadata.db.create_db_engine`
    waits for it). A commit whose reply was lost with the connection could, in principle,
    be applied twice; the store's writes are idempotent or keyed, except queued
    notifications, which are then delivered at least once."""
    for name in dir(cls):
        if name.startswith("_") or name in ("close", "for_home"):
            continue
        attr = inspect.getattr_static(cls, name)
        if inspect.isfunction(attr):
            setattr(cls, name, _reconnecting(attr))
