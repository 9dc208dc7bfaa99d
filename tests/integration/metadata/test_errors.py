"""Database errors reach the user as one line naming the database, never its password."""

from __future__ import annotations

import pytest

from metadata import db
from metadata.repository import MetadataStore
from udf.errors import MetadataError

CLOSED = {
    "postgres": "postgresql://postgres:s3cret@127.0.0.1:1/udf",
    "mariadb": "mysql://root:s3cret@127.0.0.1:1/udf",
}


def _assert_one_clean_line(message: str, where: str) -> None:
    assert "\n" not in message, message
    assert "[SQL" not in message and "sqlalche.me" not in message and "Background" not in message
    assert "s3cret" not in message
    assert where in message


@pytest.mark.parametrize("backend", sorted(CLOSED))
def test_an_unreachable_server_is_one_line_naming_the_url(backend: str) -> None:
    url = CLOSED[backend]
    with pytest.raises(MetadataError) as opening:
        MetadataStore(url)
    _assert_one_clean_line(str(opening.value), "127.0.0.1:1/udf")
    assert "***" in str(opening.value)
    for call in (db.current_revision, db.migrate):
        with pytest.raises(MetadataError) as info:
            call(url)
        _assert_one_clean_line(str(info.value), "127.0.0.1:1/udf")


def test_a_bad_url_or_driver_is_a_metadata_error() -> None:
    with pytest.raises(MetadataError, match="invalid metadata database URL") as info:
        MetadataStore("not a url")
    assert "\n" not in str(info.value)
    with pytest.raises(MetadataError, match="cannot use the metadata database") as info:
        MetadataStore("nosuchdb://user:s3cret@host/udf")
    _assert_one_clean_line(str(info.value), "nosuchdb://user:***@host/udf")


def test_a_failed_statement_is_one_line(store) -> None:
    engine = db.create_db_engine(store.url)
    try:
        with pytest.raises(Exception) as info, engine.connect() as conn:
            conn.exec_driver_sql("SELECT no_such_column FROM no_such_table")
    finally:
        engine.dispose()
    message = db.describe_error(info.value)
    assert "no_such" in message
    _assert_one_clean_line(message, "no_such_table")
