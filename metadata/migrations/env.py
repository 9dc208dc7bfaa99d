"""Alembic environment: run on the connection (holding the migration lock) from :mod:`metadata.db`.

Also works from the ``alembic`` command line with ``-x url=...`` or ``$UDF_METADATA_URL``.
SQLite gets batch mode, because it cannot ALTER most things in place.
"""

from __future__ import annotations

import os

from alembic import context

from metadata.models import Base

config = context.config
target_metadata = Base.metadata


def _engine():
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    from metadata.db import create_db_engine

    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("UDF_METADATA_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set UDF_METADATA_URL")
    return create_db_engine(url)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():  # a no-op inside metadata.db's locked transaction
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # metadata.db: already holding the migration lock
        _run(connection)
        return
    with _engine().connect() as connection:
        _run(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
