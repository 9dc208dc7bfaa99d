"""Real Spark clusters on localhost for the tests, started from the pyspark wheel itself.

- :func:`start_standalone`: a standalone master and workers (``spark-class
  org.apache.spark.deploy.master.Master`` / ``...worker.Worker``), each its own JVM with one
  core and little memory, on free ports; ready once the master's JSON status lists every
  worker alive.
- :func:`start_connect`: a Spark Connect server (``spark-submit --class
  org.apache.spark.sql.connect.service.SparkConnectServer``; the connect jar is in the
  wheel's ``jars/``) on ``local[2]``, on a free port; ready once its gRPC port accepts.

Each process runs in a session (process group) of its own, so :meth:`Cluster.stop` ends the
JVM and anything it started (executors, Python workers) and nothing else. Their logs are
under the given folder (``*.log``); a start that fails or times out raises with the log's end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 180.0  # seconds; JVMs start slowly on a loaded 2-core machine


@dataclass
class Cluster:
    """Processes of one cluster and the URL the platform's settings point at."""

    url: str  # spark://127.0.0.1:PORT or sc://127.0.0.1:PORT
    folder: Path
    ui_url: str = ""  # a standalone master's web UI (its JSON status at /json/)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop(process)


def start_standalone(folder: Path, workers: int = 2, worker_memory: str = "1g") -> Cluster:
    """A master and ``workers`` workers (one core each); the master's URL once all are alive."""
    env = _environment(folder) | {"SPARK_DAEMON_MEMORY": "256m"}  # the master's, workers' heap
    port, ui = _free_port(), _free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", folder, f"http://127.0.0.1:{ui}")
    try:
        cluster.processes.append(_spawn(
            folder / "master.log", env,
            ["spark-class", "org.apache.spark.deploy.master.Master",
             "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
        ))  # fmt: skip
        for i in range(workers):
            work = folder / f"worker-{i}"
            work.mkdir(parents=True, exist_ok=True)
            cluster.processes.append(_spawn(
                folder / f"worker-{i}.log", env,
                ["spark-class", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                 "--cores", "1", "--memory", worker_memory, "--webui-port", str(_free_port()),
                 "--work-dir", str(work), cluster.url],
            ))  # fmt: skip

        def ready() -> bool:
            with urllib.request.urlopen(f"{cluster.ui_url}/json/", timeout=5) as answer:
                status = json.load(answer)
            return status.get("status") == "ALIVE" and status.get("aliveworkers") == workers

        _wait(ready, cluster, "standalone master with every worker alive")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_connect(folder: Path, master: str = "local[2]") -> Cluster:
    """A Spark Connect server on ``master``; ``sc://127.0.0.1:PORT`` once it accepts."""
    env = _environment(folder)
    env["PYSPARK_PYTHON"] = sys.executable  # the server's Python workers (UDFs) need pyspark
    port = _free_port()
    cluster = Cluster(f"sc://127.0.0.1:{port}", folder)
    try:
        cluster.processes.append(_spawn(
            folder / "connect.log", env,
            ["spark-submit", "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
             "--master", master, "--driver-memory", "1g", "--conf", "spark.ui.enabled=false",
             "--conf", f"spark.connect.grpc.binding.port={port}",
             "--conf", "spark.connect.grpc.binding.address=127.0.0.1"],
        ))  # fmt: skip

        def ready() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return True

        _wait(ready, cluster, "Spark Connect server accepting connections")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def spark_home() -> Path:
    """The pyspark package's folder: its ``bin/`` scripts and ``jars/`` are a Spark distribution."""
    import pyspark  # not at import time: every test session imports this module

    return Path(pyspark.__file__).parent


def _environment(folder: Path) -> dict[str, str]:
    """The wheel as SPARK_HOME, an empty conf folder (no stray defaults), logs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conf").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env.update({
        "SPARK_HOME": str(spark_home()), "SPARK_CONF_DIR": str(folder / "conf"),
        "SPARK_LOG_DIR": str(folder), "SPARK_LOCAL_IP": "127.0.0.1",
    })  # fmt: skip
    return env


def _spawn(log: Path, env: dict[str, str], command: Sequence[str]) -> subprocess.Popen:
    script = spark_home() / "bin" / command[0]
    with log.open("ab") as out:
        return subprocess.Popen(
            ["nice", "-n", "10", str(script), *command[1:]], env=env, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def _wait(ready: Callable[[], bool], cluster: Cluster, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        dead = [p for p in cluster.processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"{what}: a process exited ({dead[0].args})\n{_tails(cluster)}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{what}: not ready after {START_TIMEOUT:g} s\n{_tails(cluster)}")


def _tails(cluster: Cluster) -> str:
    return "\n".join(
        f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        for log in sorted(cluster.folder.glob("*.log"))
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group, SIGKILL after 20 s; the group is the process's own."""
    for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
            # executors and Python workers of the group may outlive the JVM by a moment
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
        break


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
