"""A real Airflow 3.3 deployment as subprocesses: what ``dag.test()`` cannot show.

``dag.test()`` runs one task after another in the test's process, so races between parallel
tasks never happen there. :class:`Deployment` starts what a LocalExecutor deployment runs,
each in its own process group with a private ``AIRFLOW_HOME``: ``airflow api-server`` (the
UI, the public REST API and the execution API the tasks report to), ``airflow scheduler``
(with the LocalExecutor's worker processes) and ``airflow dag-processor``, on an Airflow
database of its own on PostgreSQL (``airflow db migrate``). No triggerer: no task defers.
Everything is driven through the public REST API, as a user would, and every process
(workers and their Spark JVMs included) is killed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from tests.integration.airflow import harness

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
COMPONENTS = ("api-server", "scheduler", "dag-processor")


@dataclass
class Deployment:
    root: Path
    airflow_db: str
    platform_env: dict[str, str]
    port: int = field(default_factory=harness.free_port)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _token: str | None = None
    leftovers: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow-home"

    def env(self) -> dict[str, str]:
        """Airflow's settings for every component and worker, plus the platform's."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "UDF_"))}
        return {
            **inherited,
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_db,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.airflow_db,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(harness.DAGS),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(harness.REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # One secret for every component: the scheduler signs the tasks' tokens, the
            # API server checks them.
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt"),
            "AIRFLOW__API__SECRET_KEY": self._secret("api"),
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "PYTHONPATH": str(harness.REPO),
            **self.platform_env,
        }

    def _secret(self, name: str) -> str:
        path = self.root / f"{name}.secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    def start(self, timeout: float = 600) -> None:
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=self.env(), capture_output=True, timeout=timeout
        )
        assert migrate.returncode == 0, migrate.stderr.decode()[-3000:]
        for name in COMPONENTS:
            log = (self.root / f"{name}.log").open("wb")
            self._logs.append(log)
            command = [AIRFLOW, name]
            if name == "api-server":
                command += ["--host", "127.0.0.1", "--port", str(self.port)]
            self._processes[name] = subprocess.Popen(
                command, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.wait_for(lambda: self._healthy(), timeout, "the API server to answer")

    def _healthy(self) -> bool:
        self.check_alive()
        try:
            return self.call("GET", "/api/v2/monitor/health", auth=False)[0] == 200
        except OSError:
            return False

    def check_alive(self) -> None:
        for name, process in self._processes.items():
            assert process.poll() is None, f"airflow {name} exited: see {self.root / name}.log"

    def stop(self) -> None:
        """SIGTERM every process and its descendants (workers, Spark JVMs), then SIGKILL."""
        family: list[psutil.Process] = []
        for process in self._processes.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(process.pid)
                family += [parent, *parent.children(recursive=True)]
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.terminate()
        _, alive = psutil.wait_procs(family, timeout=60)
        for member in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(alive, timeout=30)
        for process in self._processes.values():
            process.wait(timeout=30)
        for log in self._logs:
            log.close()
        self.leftovers = [m.pid for m in family if _alive(m)]

    # -- the public REST API ---------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None, *, auth: bool = True
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                raw = answer.read()
                return answer.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode("utf-8", "replace")

    def token(self) -> str:
        if self._token is None:
            status, answer = self.call("GET", "/auth/token", auth=False)
            assert status in (200, 201), answer
            self._token = answer["access_token"]
        return self._token

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {answer}"
        return answer

    def wait_for_dags(self, *dag_ids: str, timeout: float = 600) -> None:
        def parsed() -> bool:
            self.check_alive()
            return all(self.call("GET", f"/api/v2/dags/{d}")[0] == 200 for d in dag_ids)

        self.wait_for(parsed, timeout, f"the dag processor to parse {', '.join(dag_ids)}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1200) -> dict[str, Any]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"

        def finished() -> bool:
            self.check_alive()
            return self.ok("GET", path)["state"] in ("success", "failed")

        self.wait_for(finished, timeout, f"{dag_id} {run_id} to finish")
        return dict(self.ok("GET", path))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100"
        return list(self.ok("GET", path)["task_instances"])

    def task_log(self, ti: dict[str, Any]) -> list[dict[str, Any]]:
        """A task try's log lines (Airflow 3 writes JSON lines) from the local log folder."""
        folder = (
            self.airflow_home / "logs" / f"dag_id={ti['dag_id']}" / f"run_id={ti['dag_run_id']}"
            / f"task_id={ti['task_id']}"
        )  # fmt: skip
        if ti["map_index"] >= 0:
            folder /= f"map_index={ti['map_index']}"
        lines = (folder / f"attempt={ti['try_number']}.log").read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    @staticmethod
    def wait_for(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(2)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
