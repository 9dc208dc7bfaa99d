"""The store's plumbing shared by its parts: engine, clock and one-transaction sessions.

:class:`~metadata.repository.MetadataStore` is assembled from this base and the mixins in
``_runs`` and ``_leases``, so no module grows past a few hundred lines; the ORM stays inside
the ``metadata`` package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from metadata.db import create_db_engine, ensure_current, session_factory
from metadata.types import utcnow
from udf.errors import MetadataError


class StoreBase:
    """Opens (and migrates) the database; each public method of the store is one ``_tx``."""

    def __init__(
        self, url: str, *, clock: Callable[[], datetime] = utcnow, migrate: bool = True
    ) -> None:
        self.url = url
        self._clock = clock
        self._engine = create_db_engine(url)
        try:
            if migrate:
                ensure_current(self._engine)
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
        """One transaction: committed on success, rolled back on any error."""
        try:
            with self._sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            raise MetadataError(f"metadata store error: {exc.orig or exc}") from exc
