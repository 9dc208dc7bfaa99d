"""The metadata store as an Airflow hook: where the UDF tasks and the plugin find it.

Deployments keep database credentials in Airflow connections (or a secrets backend), not
in the workers' environment, so the tasks and the API server's plugin ask this hook:

1. the Airflow connection ``udf_metadata`` when it exists, e.g.
   ``AIRFLOW_CONN_UDF_METADATA='postgresql://udf:secret@db:5432/udf'`` (``postgres``/
   ``postgresql`` → psycopg 3, ``mysql`` → PyMySQL, ``sqlite`` → the path in ``host``), or
   any SQLAlchemy URL in the connection's extra ``{"url": "..."}``;
2. else ``$UDF_METADATA_URL``;
3. else SQLite under the platform home (``$UDF_HOME``), the embedded default.

A task passes the connection's URL on explicitly, in its :class:`~udf.home.Home`
(:func:`task_home`), so ``compute()`` and everything else it calls read the same store. The
hook is thin on purpose: the store itself (:class:`metadata.MetadataStore`) does the work
and is usable without Airflow.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from metadata.repository import MetadataStore
    from udf.home import Home

log = logging.getLogger(__name__)

CONN_ID = "udf_metadata"
URL_ENV = "UDF_METADATA_URL"
# Airflow connection types → the SQLAlchemy drivers the platform ships.
DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}


class UdfMetadataHook(BaseHook):
    """Opens the platform's metadata store from an Airflow connection or the environment."""

    conn_name_attr = "udf_metadata_conn_id"
    default_conn_name = CONN_ID
    conn_type = "udf_metadata"
    hook_name = "UDF metadata store"

    def __init__(self, udf_metadata_conn_id: str = default_conn_name, home: Home | None = None):
        super().__init__()
        self.udf_metadata_conn_id = udf_metadata_conn_id
        self._home = home

    def get_url(self) -> str:
        """The store's SQLAlchemy URL (connection, then ``$UDF_METADATA_URL``, then the home)."""
        from udf.home import Home

        return (self._home or Home.resolve()).with_metadata(self.connection_url()).metadata_url

    def get_conn(self) -> MetadataStore:
        """A store on the resolved URL (migrated on first use, like every store)."""
        from metadata.repository import MetadataStore

        return MetadataStore(self.get_url())

    def configured_url(self) -> str | None:
        """The connection's URL, else ``$UDF_METADATA_URL``; None when neither is set."""
        return self.connection_url() or os.environ.get(URL_ENV) or None

    def connection_url(self) -> str | None:
        """The URL the connection names, or None when there is no such connection."""
        try:
            conn = self.get_connection(self.udf_metadata_conn_id)
        except Exception as exc:  # missing connection: AirflowNotFoundException (SDK or core)
            if type(exc).__name__ != "AirflowNotFoundException":
                raise
            log.debug("no connection %r; using the environment", self.udf_metadata_conn_id)
            return None
        return connection_url(conn.conn_type, conn.host, conn.login, conn.password,
                              conn.port, conn.schema, conn.extra_dejson)  # fmt: skip


def task_home() -> Home:
    """A task's platform home (``$UDF_HOME``) with the store the connection names, if any.

    Only a configured connection changes anything, so a worker without it behaves exactly
    like the ``udf`` command line on the same machine.
    """
    from udf.home import Home

    return Home.resolve().with_metadata(UdfMetadataHook().connection_url())


def connection_url(
    conn_type: str | None,
    host: str | None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A SQLAlchemy URL from an Airflow connection's fields (``extra.url`` wins)."""
    if extra and extra.get("url"):
        return str(extra["url"])
    kind = (conn_type or "").lower()
    if kind == "sqlite":
        return f"sqlite:///{host or ''}"
    driver = DRIVERS.get(kind)
    if driver is None:
        raise ValueError(
            f"connection type {conn_type!r} is not a supported metadata database; "
            f"use one of {', '.join(sorted(DRIVERS))}, sqlite, or put a URL in extra.url"
        )
    auth = ""
    if login:
        auth = quote(login, safe="")
        if password:
            auth += ":" + quote(password, safe="")
        auth += "@"
    where = host or "localhost"
    if port:
        where += f":{port}"
    return f"{driver}://{auth}{where}/{schema or ''}"
