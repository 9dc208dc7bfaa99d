"""One-line descriptions of database errors, and which errors are worth a retry."""

from __future__ import annotations

import sqlalchemy as sa

from metadata.db import describe_error, is_transient, safe_url


class _PgError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _wrapped(orig: Exception) -> sa.exc.DBAPIError:
    return sa.exc.OperationalError("SELECT *\nFROM t WHERE x = %(x)s", {"x": 1}, orig)


def test_the_driver_message_first_line_only() -> None:
    exc = _wrapped(
        _PgError("duplicate key value\nDETAIL:  Key (name)=(x) already exists.", "23505")
    )
    assert "[SQL" in str(exc) and "\n" in str(exc)  # what used to reach the user
    assert describe_error(exc) == "duplicate key value"
    mysql = _wrapped(Exception(1213, "Deadlock found when trying to get lock"))
    assert describe_error(mysql) == "Deadlock found when trying to get lock (error 1213)"


def test_sqlalchemy_errors_lose_the_background_link() -> None:
    exc = sa.exc.NoSuchModuleError("Can't load plugin: sqlalchemy.dialects:foo")
    exc.code = "e3q8"
    assert "sqlalche.me" in str(exc)
    assert describe_error(exc) == "Can't load plugin: sqlalchemy.dialects:foo"


def test_transient_errors() -> None:
    assert is_transient(_wrapped(_PgError("deadlock detected", "40P01")))
    assert is_transient(_wrapped(_PgError("could not serialize access", "40001")))
    assert is_transient(_wrapped(Exception(1213, "Deadlock found")))
    assert is_transient(_wrapped(Exception(1205, "Lock wait timeout exceeded")))
    assert not is_transient(_wrapped(_PgError("duplicate key", "23505")))
    assert not is_transient(_wrapped(Exception(1062, "Duplicate entry")))
    assert not is_transient(ValueError("x"))


def test_safe_url_masks_the_password() -> None:
    assert safe_url("postgresql://u:pw@h:5/db") == "postgresql://u:***@h:5/db"
    assert "pw" not in safe_url("bad url //u:pw@h")
