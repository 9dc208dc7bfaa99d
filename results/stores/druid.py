"""The Druid results store: SQL-based ingestion (MSQ) to write, Druid SQL (pydruid) to read.

It uses three endpoints of the router, nothing else: ``POST /druid/v2/sql/task`` submits the
REPLACE that rewrites a slice's day, ``GET /druid/indexer/v1/task/{id}/status`` is polled
until the task succeeds or fails, and ``/druid/v2/sql`` answers the existence and version
checks and the reads (through pydruid's DB-API). A REPLACE publishes the day's new segments
in one atomic step, so readers see either the old day or the new one, and a failed task
leaves the old rows in place.

Druid overwrites whole days and MSQ unions only plain tables, so a write reads the rest of
the slice's day with a plain SELECT (the reader's own path), merges it with the slice's new
rows here and sends the whole day inline (see :mod:`results.stores.druid_sql`). Writers
of one day are therefore serialised by ``lock``, held from that read until the task has
succeeded: two writers reading the day at once would each send the day as they read it, and
the second would drop the slice the first just wrote (for another metric, say).
:func:`from_settings` (and so ``open_store``) gives it a :class:`~results.stores.locks.LeaseLock`
on the metadata store, which spans processes and machines; whoever builds the store directly
must pass a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from results.schema import SCHEMA_VERSION, ResultRow, Slice
from results.stores import LockFactory
from results.stores.base import ResultsStore, checked_rows, checked_upsert, sort_rows
from results.stores.druid_sql import (
    ident,
    literal,
    replace_statement,
    row_from_druid,
    select_statement,
)
from udf.errors import ResultsError
from udf.home import Home
from udf.logging import get_logger
from udf.settings import Settings

SQL_PATH = "/druid/v2/sql/"
TASK_PATH = "/druid/v2/sql/task"
STATUS_PATH = "/druid/indexer/v1/task/{task}/status"
# Every statement runs with UTC dates; the REPLACE waits until its segments are served, so
# the next writer's existence check and read of the day (and every reader) see what it wrote.
# A REPLACE that yields no rows (a day left empty) drops the day instead of failing.
CONTEXT = {"sqlTimeZone": "Etc/UTC"}
TASK_CONTEXT = {
    **CONTEXT,
    "waitUntilSegmentsLoad": True,
    "finalizeAggregations": False,
    "failOnEmptyInsert": False,
}
POLL_FIRST, POLL_MAX = 0.2, 5.0  # seconds between status requests: grows x1.5 up to the max
_log = get_logger(__name__)


class DruidResultsStore(ResultsStore):
    """Results in one Druid datasource, reached through the router at ``router_url``.

    ``lock`` serialises the writers of each day: it must span every process that writes
    the datasource (:class:`~results.stores.locks.LeaseLock`).
    """

    def __init__(
        self,
        router_url: str,
        datasource: str,
        timeout: float = 600.0,
        *,
        lock: LockFactory,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(router_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ResultsError(
                f"invalid Druid router URL {router_url!r}: expected http(s)://host:port"
            )
        self.router = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        self._parts = parts
        self.datasource = datasource
        self.timeout = timeout
        self._lock = lock
        self._sleep = sleep
        self._session: Any = None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def lock_name(self, slice: Slice) -> str:
        """The lock a writer of ``slice`` holds from :meth:`submit` until :meth:`wait` returns."""
        return self._day_lock(slice.date)

    def _day_lock(self, day: date) -> str:
        return f"results/druid/{self.datasource}/{day.isoformat()}"

    def replace(self, slice: Slice, rows: Sequence[ResultRow]) -> int:
        checked = checked_rows(slice, rows)
        with self._lock(self.lock_name(slice)):
            task = self.submit(slice, checked)
            if task is not None:
                self.wait(task)
        return len(checked)

    def upsert(self, rows: Sequence[ResultRow]) -> int:
        """Merge ``rows`` into their days by key and REPLACE those days in one task.

        Druid has no upsert: under the lock of every day from the rows' first to their last
        (taken in date order, so writers never wait for each other in a circle), the days
        are read, each stored row whose key comes again is dropped, and the days are sent
        back whole with the new rows, as :meth:`replace` sends a slice's day.
        """
        checked = checked_upsert(rows)
        if not checked:
            return 0
        first = date.fromisoformat(min(row.date for row in checked))
        last = date.fromisoformat(max(row.date for row in checked))
        keys = {row.key() for row in checked}
        with ExitStack() as held:
            for offset in range((last - first).days + 1):
                held.enter_context(self._lock(self._day_lock(first + timedelta(days=offset))))
            stored = self._stored(first, last) or []
            kept = [row for row in stored if row.key() not in keys]
            task = self._send(replace_statement(self.datasource, first, [*kept, *checked], last))
            _log.info("druid results task submitted", task=task, upserted=len(checked),
                      kept=len(kept), first=first.isoformat(), last=last.isoformat())  # fmt: skip
            self.wait(task)
        return len(checked)

    def submit(self, slice: Slice, rows: Sequence[ResultRow]) -> str | None:
        """Read the rest of the slice's day, submit the REPLACE of the whole day; its task id.

        None when there is nothing to write (no datasource yet and no rows). The caller must
        hold ``lock(self.lock_name(slice))`` from before this call until :meth:`wait` on the
        task returns: the statement carries the day as read here, so another writer of the
        day in between would have its slice dropped. :meth:`replace` does exactly that; the
        split lets an Airflow deferrable operator submit, release its worker slot and check
        back later, keeping the (lease-backed) lock all along.
        """
        checked = checked_rows(slice, rows)
        stored = self._stored(slice.date, slice.date, exclude=slice)
        if stored is None and not checked:
            return None  # nothing stored, nothing to write
        kept = [row for row in stored or [] if not slice.contains(row)]
        statement = replace_statement(self.datasource, slice.date, [*kept, *checked])
        task = self._send(statement)
        _log.info("druid results task submitted", task=task, source=slice.source,
                  metric_type=slice.metric_type, date=slice.day, rows=len(checked),
                  kept=len(kept))  # fmt: skip
        return task

    def _stored(
        self, first: date, last: date, exclude: Slice | None = None
    ) -> list[ResultRow] | None:
        """The stored rows of the days ``first`` to ``last`` (less ``exclude``'s), None when
        the datasource does not exist yet; refuses a datasource of a newer schema."""
        if not self._exists():
            return None
        self._check_version()
        query = select_statement(
            self.datasource, source=None, metric_type=None, date_from=first, date_to=last,
            metrics=None, experiments=None, exclude=exclude,
        )  # fmt: skip
        return self._rows(query)

    def _send(self, statement: str) -> str:
        """Submit an ingestion statement; its task id."""
        body = self._post(TASK_PATH, {"query": statement, "context": TASK_CONTEXT})
        task = body.get("taskId") if isinstance(body, dict) else None
        if not task:
            raise ResultsError(f"Druid accepted the results write but returned no task id: {body}")
        return str(task)

    def wait(self, task: str) -> None:
        """Poll the task's status until it succeeds; ResultsError with Druid's message if not."""
        deadline = time.monotonic() + self.timeout
        delay, state, problem = POLL_FIRST, "unknown", ""
        while True:
            try:
                body = self._get(STATUS_PATH.format(task=quote(task, safe="")))
                status = (body.get("status") if isinstance(body, dict) else None) or {}
                state = str(status.get("statusCode") or status.get("status") or "unknown")
                problem = ""
            except ResultsError as exc:  # the router or overlord hiccuped: ask again
                problem = f" (last status request: {exc})"
                status = {}
            if state == "SUCCESS":
                return
            if state == "FAILED":
                reason = status.get("errorMsg") or "no error message"
                raise ResultsError(f"Druid task {task} writing results failed: {reason}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResultsError(
                    f"Druid task {task} is still {state} after {self.timeout:g} s{problem}; "
                    f"it may yet finish: check it in the Druid console"
                )
            self._sleep(min(delay, left))
            delay = min(delay * 1.5, POLL_MAX)

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
        if (metrics is not None and not metrics) or (experiments is not None and not experiments):
            return []
        if not self._exists():
            return []
        query = select_statement(
            self.datasource, source=source, metric_type=metric_type, date_from=date_from,
            date_to=date_to, metrics=metrics, experiments=experiments,
        )  # fmt: skip
        return sort_rows(self._rows(query))

    def _rows(self, query: str) -> list[ResultRow]:
        """The result rows a select_statement() query returns; refuses newer schema versions."""
        rows = [row_from_druid(values) for values in self._sql(query)]
        newer = max((row.schema_version for row in rows), default=SCHEMA_VERSION)
        if newer > SCHEMA_VERSION:
            raise self._newer(newer)
        return rows

    def _exists(self) -> bool:
        query = (
            'SELECT "TABLE_NAME" FROM "INFORMATION_SCHEMA"."TABLES" '
            f'WHERE "TABLE_SCHEMA" = \'druid\' AND "TABLE_NAME" = {literal(self.datasource)}'
        )
        return bool(self._sql(query))

    def _check_version(self) -> None:
        """Refuse a datasource written by newer code, or holding only rows of an older schema.

        While no row follows this schema, the datasource lacks its new columns, which every
        read names: Druid would refuse the read of the day's other rows with an unknown
        column. The datasource is migrated once instead (docs/results.md).
        """
        found = self._sql(f'SELECT MAX("schema_version") AS "v" FROM {ident(self.datasource)}')
        newest = found[0].get("v") if found else None
        if newest is not None and int(newest) > SCHEMA_VERSION:
            raise self._newer(int(newest))
        if newest is not None and int(newest) < SCHEMA_VERSION:
            raise ResultsError(
                f"the Druid datasource {self.datasource!r} holds results of schema version "
                f"{int(newest)}; this platform writes {SCHEMA_VERSION}: migrate it with the "
                f"REPLACE in docs/results.md (How the schema changes) before writing"
            )

    def _newer(self, version: int) -> ResultsError:
        return ResultsError(
            f"the Druid datasource {self.datasource!r} holds results of schema version "
            f"{version}, newer than this platform's {SCHEMA_VERSION}: upgrade the platform"
        )

    def _sql(self, query: str) -> list[dict[str, Any]]:
        """A Druid SQL query through pydruid; the rows as dicts. Druid stops it at the timeout."""
        from pydruid.db import connect
        from pydruid.db.exceptions import Error
        from requests import RequestException

        p = self._parts
        context = {**CONTEXT, "timeout": int(self.timeout * 1000)}
        try:
            conn = connect(
                host=p.hostname, port=p.port or (443 if p.scheme == "https" else 80),
                path=p.path.rstrip("/") + SQL_PATH, scheme=p.scheme, user=p.username,
                password=p.password, context=context,
            )  # fmt: skip
            cursor = conn.cursor()
            cursor.execute(query)
            rows = cursor.fetchall()
            names = [d[0] for d in cursor.description or ()]
            conn.close()
        except (Error, RequestException) as exc:
            raise ResultsError(f"Druid SQL at {self.router} failed: {_one_line(exc)}") from exc
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _http(self) -> Any:
        if self._session is None:
            import requests

            self._session = requests.Session()
            if self._parts.username:
                self._session.auth = (self._parts.username, self._parts.password or "")
        return self._session

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        return self._request("POST", path, json=payload)

    def _get(self, path: str) -> Any:
        return self._request("GET", path)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        from requests import RequestException

        url = self.router + path
        try:
            response = self._http().request(method, url, timeout=min(self.timeout, 60.0), **kwargs)
        except RequestException as exc:
            raise ResultsError(f"Druid at {self.router} is unreachable: {_one_line(exc)}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            message = (
                (body.get("errorMessage") or body.get("error")) if isinstance(body, dict) else None
            )
            raise ResultsError(
                f"Druid refused {method} {path} (HTTP {response.status_code}): "
                f"{_one_line(message or response.text or response.reason)}"
            )
        return body


def _one_line(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 500 else text[:497] + "..."


def from_settings(
    home: Home, settings: Settings, *, lock: LockFactory | None = None
) -> ResultsStore:
    """The Druid store of ``settings``; its writers lock each day with leases in the home's
    metadata store unless ``lock`` is given."""
    from results.stores.locks import LeaseLock

    druid = settings.results.druid
    return DruidResultsStore(
        druid.router, druid.datasource, druid.timeout_seconds,
        lock=lock or LeaseLock(home.metadata_url),
    )  # fmt: skip
