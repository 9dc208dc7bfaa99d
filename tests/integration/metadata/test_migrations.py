"""The migrations build exactly models.py, and tear it all down again, on every backend."""

from __future__ import annotations

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
