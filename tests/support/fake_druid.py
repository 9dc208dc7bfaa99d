"""A fake Apache Druid router for tests: a real HTTP server on 127.0.0.1 backed by DuckDB.

No Druid server runs on these machines (ENGINES.md), so the Druid results store is tested
against this one. It implements exactly the endpoints the store uses and checks what it is
sent (see :mod:`tests.support.fake_druid_sql` for the REPLACE rules):

- ``POST /druid/v2/sql`` (pydruid's requests): runs SELECTs on DuckDB, answers like Druid
  (an array of objects by default; ``resultFormat`` array/objectLines/arrayLines; ``header``),
  ``__time`` as ISO-8601 text; refuses anything but SELECT;
- ``POST /druid/v2/sql/task``: checks and plans the REPLACE (unknown tables, bad SQL and broken
  rules answer HTTP 400 with a Druid-style error, among them any UNION and any read of the
  datasource being overwritten), then runs it as a task: RUNNING, then SUCCESS (the day is
  replaced in one DuckDB transaction; no rows drop it, as Druid 29+ does unless the context
  sets ``failOnEmptyInsert``) or FAILED with ``errorMsg`` (rows outside the interval, no rows
  with ``failOnEmptyInsert: true``, or a failure injected with
  :meth:`FakeDruid.fail_next_task`);
- ``GET /druid/indexer/v1/task/{id}/status``: the task's status, 404 for unknown tasks.

Every request is recorded in :attr:`FakeDruid.requests`; any other path answers 404 and is
recorded too, so a test can assert the store used nothing else.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import duckdb

from tests.support.fake_druid_sql import DUCKDB_TYPES, EXPECTED_TYPES, Rejected, parse_replace

STATUS = re.compile(r"/druid/indexer/v1/task/(?P<task>[^/]+)/status")
SCHEMA = ("__time", *EXPECTED_TYPES)


@dataclass
class Recorded:
    method: str
    path: str
    body: Any


@dataclass
class Task:
    id: str
    datasource: str
    state: str = "RUNNING"
    error: str | None = None
    created: str = ""


class FakeDruid:
    """Start with ``with FakeDruid() as druid:``; ``druid.url`` is the router's URL."""

    def __init__(self, task_delay: float = 0.05) -> None:
        self.task_delay = task_delay
        self.requests: list[Recorded] = []
        self.tasks: dict[str, Task] = {}
        self.status_errors = 0  # answer this many status requests with HTTP 503
        self._fail_next: str | None = None
        self._db = duckdb.connect()
        self._db.execute("CREATE SCHEMA druid")
        self._db.execute("SET search_path = 'druid,main'")
        self._db.execute("CREATE MACRO TIME_PARSE(s) AS CAST(s AS TIMESTAMP)")
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._serving = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> FakeDruid:
        self._serving.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._db.close()

    # --- for tests -----------------------------------------------------------------------
    def fail_next_task(self, message: str = "injected failure") -> None:
        """The next submitted task ends FAILED with ``message`` and changes nothing."""
        self._fail_next = message

    def rows(self, datasource: str) -> list[dict[str, Any]]:
        """Every stored row of a datasource (``__time`` as a datetime), [] when absent."""
        with self._lock:
            if not self._exists(datasource):
                return []
            cursor = self._db.execute(f'SELECT * FROM druid."{datasource}"')
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def statements(self) -> list[str]:
        """The statements submitted as tasks, in order."""
        return [r.body["query"] for r in self.requests if r.path == "/druid/v2/sql/task"]

    def wait_idle(self) -> None:
        for thread in list(self._threads):
            thread.join(timeout=10)

    # --- endpoints -----------------------------------------------------------------------
    def sql(self, body: dict[str, Any]) -> tuple[int, Any]:
        query = str(body.get("query", ""))
        if not re.match(r"\s*(SELECT|WITH)\b", query, re.I):
            return 400, _error(f"the native SQL engine runs only SELECT, not: {query[:60]}")
        try:
            with self._lock:
                cursor = self._db.execute(query)
                names = [d[0] for d in cursor.description]
                rows = [[_json_value(v) for v in row] for row in cursor.fetchall()]
        except duckdb.Error as exc:
            return 400, _error(str(exc).splitlines()[0])
        fmt = body.get("resultFormat") or "object"
        records: list[Any] = [dict(zip(names, r, strict=True)) for r in rows]
        if fmt.startswith("array"):
            records = rows
        if body.get("header"):
            records.insert(0, names if fmt.startswith("array") else dict.fromkeys(names))
        if fmt.endswith("Lines"):
            return 200, "".join(json.dumps(r) + "\n" for r in records) + "\n"
        return 200, records

    def submit(self, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            names = (f"__extern_{next(self._ids)}" for _ in itertools.count())
            try:
                plan = parse_replace(str(body.get("query", "")), lambda: next(names))
                for name, rows in plan.externs.items():
                    self._load(name, rows)
                cursor = self._db.execute(f"SELECT * FROM ({plan.select}) LIMIT 0")
                produced = [d[0] for d in cursor.description]
            except Rejected as exc:
                return 400, _error(str(exc))
            except duckdb.Error as exc:
                return 400, _error(str(exc).splitlines()[0])
            if sorted(produced) != sorted(SCHEMA):
                return 400, _error(f"the SELECT yields {produced}, not the results schema")
            task = Task(f"query-{next(self._ids):04d}", plan.datasource, created=_now())
            self.tasks[task.id] = task
            failure, self._fail_next = self._fail_next, None
            context = body.get("context") or {}
            fail_empty = isinstance(context, dict) and context.get("failOnEmptyInsert") is True
        thread = threading.Thread(
            target=self._run, args=(task, plan, failure, fail_empty), daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return 200, {"taskId": task.id, "state": "RUNNING"}

    def status(self, task_id: str) -> tuple[int, Any]:
        if self.status_errors > 0:
            self.status_errors -= 1
            return 503, _error("overlord not ready", code="internal")
        task = self.tasks.get(task_id)
        if task is None:
            return 404, {"task": task_id}
        return 200, {
            "task": task.id,
            "status": {
                "id": task.id,
                "type": "query_controller",
                "createdTime": task.created,
                "queueInsertionTime": task.created,
                "statusCode": task.state,
                "status": task.state,
                "runnerStatusCode": task.state,
                "duration": -1,
                "location": {"host": None, "port": -1, "tlsPort": -1},
                "dataSource": task.datasource,
                "errorMsg": task.error,
            },
        }

    # --- task execution ------------------------------------------------------------------
    def _run(self, task: Task, plan: Any, failure: str | None, fail_empty: bool) -> None:
        time.sleep(self.task_delay)
        try:
            if failure is not None:
                raise Rejected(failure)
            with self._lock:
                self._apply(plan, fail_empty)
            task.state = "SUCCESS"
        except (duckdb.Error, Rejected) as exc:
            task.error, task.state = str(exc).splitlines()[0], "FAILED"
        finally:
            with self._lock:
                for name in plan.externs:
                    self._db.execute(f'DROP TABLE IF EXISTS main."{name}"')

    def _apply(self, plan: Any, fail_empty: bool) -> None:
        table, columns = f'druid."{plan.datasource}"', ", ".join(f'"{c}"' for c in SCHEMA)
        self._db.execute(
            f"CREATE OR REPLACE TEMP TABLE new_day AS SELECT {columns} FROM ({plan.select})"
        )
        outside = self._db.execute(
            'SELECT count(*) FROM new_day WHERE "__time" < ? OR "__time" >= ?',
            [plan.start, plan.end],
        ).fetchone()
        if outside and outside[0]:
            raise Rejected(
                f"InsertTimeOutOfBounds: {outside[0]} rows outside the OVERWRITE interval"
            )
        produced = self._db.execute("SELECT count(*) FROM new_day").fetchone()
        if fail_empty and produced and not produced[0]:
            raise Rejected(
                f"InsertCannotBeEmpty: No rows to insert for dataSource[{plan.datasource}]"
            )
        self._db.execute("BEGIN")
        try:
            if not self._exists(plan.datasource):
                types = ", ".join(f'"{c}" {DUCKDB_TYPES[t]}' for c, t in EXPECTED_TYPES.items())
                self._db.execute(f'CREATE TABLE {table} ("__time" TIMESTAMP, {types})')
            self._db.execute(
                f'DELETE FROM {table} WHERE "__time" >= ? AND "__time" < ?', [plan.start, plan.end]
            )
            self._db.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM new_day")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _load(self, name: str, rows: list[dict[str, Any]]) -> None:
        types = ", ".join(f'"{c}" {DUCKDB_TYPES[t]}' for c, t in EXPECTED_TYPES.items())
        self._db.execute(f'CREATE TABLE main."{name}" ({types})')
        marks = ", ".join("?" for _ in EXPECTED_TYPES)
        self._db.executemany(
            f'INSERT INTO main."{name}" VALUES ({marks})',
            [[row.get(c) for c in EXPECTED_TYPES] for row in rows],
        )

    def _exists(self, datasource: str) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = 'druid' AND table_name = ?",
            [datasource],
        ).fetchone()
        return found is not None


def _handler(fake: FakeDruid) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode(errors="replace")
            self._dispatch("POST", body)

        def do_GET(self) -> None:
            self._dispatch("GET", None)

        def _dispatch(self, method: str, body: Any) -> None:
            path = self.path.split("?", 1)[0]
            fake.requests.append(Recorded(method, path, body))
            match = STATUS.fullmatch(path)
            if method == "POST" and path.rstrip("/") == "/druid/v2/sql" and isinstance(body, dict):
                code, answer = fake.sql(body)
            elif method == "POST" and path == "/druid/v2/sql/task" and isinstance(body, dict):
                code, answer = fake.submit(body)
            elif method == "GET" and match:
                code, answer = fake.status(match["task"])
            else:
                code, answer = 404, _error(f"no such endpoint: {method} {path}", code="notFound")
            data = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


def _error(message: str, code: str = "invalidInput") -> dict[str, Any]:
    """Druid's error body (DruidException); pydruid reads error, category, errorMessage."""
    category = "INVALID_INPUT" if code == "invalidInput" else code.upper()
    return {"error": "druidException", "errorCode": code, "persona": "USER",
            "category": category, "errorMessage": message, "context": {}}  # fmt: skip


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
    return value


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
