"""The local Flink session cluster: ``udf flink up`` / ``down`` / ``status``.

One JobManager and one TaskManager, started from the PyFlink wheel's own scripts and jars
(``pyflink/bin``, ``pyflink/lib``, ``pyflink/opt``), with the REST API on
``localhost:<flink.rest_port>``. Everything lives under ``<home>/flink/``
(or under ``flink.dir``: several homes may share one cluster):

* ``dist/``: a private Flink home: ``bin/`` copied, one symlink per jar of ``lib/`` (a symlink
  to the whole folder breaks ``config.sh``), with ``flink-python`` added to ``lib/`` so the
  cluster runs Python jobs;
* ``conf/config.yaml``: written from the settings at every start (``flink.conf`` last); the
  TaskManager's JVM gets ``stream.jvm_options``, as a local job's does;
* ``log/``: one log per process (``jobmanager.log``, ``taskmanager.log``);
* ``jobmanager.pid``, ``taskmanager.pid``: the JVMs' process ids.

Each process runs in the foreground script (``start-foreground``, which ``exec``s the JVM) in
a session of its own, so the pid file holds the JVM itself: ``down`` and a supervisor that
revives a dead TaskManager act on exactly these processes, never on other Java processes of
the machine. The TaskManager gets this interpreter's ``PYTHONPATH`` and ``python.executable``,
so its Python workers import the platform.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from udf.errors import UdfError
from udf.home import Home
from udf.logging import get_logger

log = get_logger(__name__)

ROLES = {"jobmanager": "jobmanager.sh", "taskmanager": "taskmanager.sh"}


class ClusterError(UdfError):
    """The Flink session cluster cannot be started, stopped or reached."""


def pyflink_dist() -> Path:
    """The installed PyFlink package's folder (``bin/``, ``lib/``, ``opt/``, ``conf/``)."""
    import importlib.util

    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("PyFlink is not installed: the Flink cluster runs from its wheel")
    return Path(next(iter(spec.submodule_search_locations)))


def port_busy(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (our own child, not yet reaped) is dead too
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@dataclass(frozen=True)
class Cluster:
    """The session cluster of one home (its settings: ``udf.settings.FlinkSettings``)."""

    home: Home
    settings: Any  # udf.settings.FlinkSettings
    jvm_options: str  # the TaskManager's, where the jobs run (stream.jvm_options)
    state_memory: str  # the TaskManager's managed memory (stream.state_memory)

    @classmethod
    def of(cls, home: Home) -> Cluster:
        from udf.settings import load_settings

        settings = load_settings(home)
        stream = settings.stream
        return cls(home, settings.flink, stream.jvm_options, stream.state_memory)

    @property
    def root(self) -> Path:
        return Path(self.settings.dir).absolute() if self.settings.dir else self.home.root / "flink"

    dist = property(lambda self: self.root / "dist")
    conf_dir = property(lambda self: self.root / "conf")
    log_dir = property(lambda self: self.root / "log")

    @property
    def rest_url(self) -> str:
        return f"http://localhost:{self.settings.rest_port}"

    def pid_file(self, role: str) -> Path:
        return self.root / f"{role}.pid"

    def pid(self, role: str) -> int | None:
        try:
            return int(self.pid_file(role).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running(self, role: str) -> bool:
        return alive(self.pid(role))

    # -- starting and stopping -------------------------------------------------------------------

    def up(self) -> dict[str, Any]:
        """Start the JobManager and a TaskManager; wait until the REST API shows the slots."""
        running = [role for role in ROLES if self.running(role)]
        if running:
            raise ClusterError(
                f"the Flink cluster of {self.home.root} is already running "
                f"({', '.join(f'{r} pid {self.pid(r)}' for r in running)}): `udf flink down` first"
            )
        port = self.settings.rest_port
        if port_busy(port):
            raise ClusterError(
                f"port {port} is in use: set flink.rest_port in settings.yaml "
                f"(or UDF_FLINK_REST_PORT) to a free port"
            )
        self._prepare()
        self.start("jobmanager")
        try:
            self.start("taskmanager")
            self.wait_ready(self.settings.start_timeout_seconds)
        except BaseException:
            self.down(missing_ok=True)
            raise
        return self.status()

    def start(self, role: str) -> int:
        """Start one process (``jobmanager`` or ``taskmanager``) in the background; its pid."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLINK_", "JAVA_TOOL"))}
        env.update(
            FLINK_HOME=str(self.dist), FLINK_CONF_DIR=str(self.conf_dir),
            FLINK_LOG_DIR=str(self.log_dir), FLINK_BIN_DIR=str(self.dist / "bin"),
            FLINK_LIB_DIR=str(self.dist / "lib"), FLINK_OPT_DIR=str(self.dist / "opt"),
            PYTHONPATH=os.pathsep.join(dict.fromkeys(p for p in sys.path if p and os.path.isdir(p))),
        )  # fmt: skip
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        with (self.log_dir / f"{role}.out").open("ab") as out:
            process = subprocess.Popen(
                [str(self.dist / "bin" / ROLES[role]), "start-foreground"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.root,
            )  # fmt: skip
        self.pid_file(role).write_text(f"{process.pid}\n")
        log.info("flink.started", role=role, pid=process.pid)
        return process.pid

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for role in ROLES:
                if not self.running(role):
                    raise ClusterError(
                        f"the Flink {role} exited while starting: see {self.log_dir / role}.out"
                    )
            with contextlib.suppress(ClusterError):
                if self.rest("/overview").get("taskmanagers", 0) >= 1:
                    return
            time.sleep(0.5)
        raise ClusterError(
            f"the Flink cluster did not answer on {self.rest_url} in {timeout:.0f} s"
        )

    def down(self, missing_ok: bool = False) -> list[str]:
        """Stop both processes (SIGTERM, then SIGKILL after 30 s); the roles that were stopped."""
        stopped = []
        for role in ("taskmanager", "jobmanager"):
            pid = self.pid(role)
            if alive(pid):
                assert pid is not None
                _terminate(pid)
                stopped.append(role)
            self.pid_file(role).unlink(missing_ok=True)
        if not stopped and not missing_ok:
            raise ClusterError(f"no Flink cluster is running in {self.home.root}")
        return stopped

    def revive_taskmanager(self) -> int | None:
        """Start a TaskManager when the JobManager runs and the TaskManager died; its pid."""
        if not self.running("jobmanager") or self.running("taskmanager"):
            return None
        log.warning("flink.taskmanager_dead", pid=self.pid("taskmanager"))
        return self.start("taskmanager")

    # -- state -----------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Processes, the REST API's overview and the jobs (``running: False`` when down)."""
        report: dict[str, Any] = {
            "rest_url": self.rest_url, "home": str(self.home.root),
            **{f"{role}_pid": self.pid(role) if self.running(role) else None for role in ROLES},
        }  # fmt: skip
        report["running"] = any(report[f"{role}_pid"] for role in ROLES)
        if report["running"]:
            try:
                overview = self.rest("/overview")
                report.update(
                    flink_version=overview.get("flink-version"),
                    taskmanagers=overview.get("taskmanagers"),
                    slots_total=overview.get("slots-total"),
                    slots_available=overview.get("slots-available"),
                    jobs_running=overview.get("jobs-running"),
                )
            except ClusterError as exc:
                report["error"] = str(exc)
        return report

    def rest(self, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
        """One call to the REST API; its JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.rest_url + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise ClusterError(f"Flink REST {method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClusterError(f"Flink REST {self.rest_url} unreachable: {exc}") from None
        return json.loads(text) if text else {}

    # -- the private Flink home and its config --------------------------------------------------

    def _prepare(self) -> None:
        source = pyflink_dist()
        shutil.rmtree(self.dist, ignore_errors=True)
        shutil.copytree(source / "bin", self.dist / "bin")
        for folder in ("lib", "opt", "plugins"):
            (self.dist / folder).mkdir(parents=True, exist_ok=True)
            for jar in (
                sorted((source / folder).glob("*.jar")) if (source / folder).exists() else []
            ):
                (self.dist / folder / jar.name).symlink_to(jar)
        for jar in (source / "opt").glob("flink-python-*.jar"):
            (self.dist / "lib" / jar.name).symlink_to(jar)
        for made in (self.conf_dir, self.root / "web", self.root / "tmp"):
            made.mkdir(parents=True, exist_ok=True)
        for name in ("log4j-console.properties", "log4j.properties", "log4j-cli.properties"):
            if (source / "conf" / name).exists():
                shutil.copy(source / "conf" / name, self.conf_dir / name)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(self.config(), sort_keys=True))

    def config(self) -> dict[str, str]:
        s = self.settings
        heartbeat_ms = round(s.heartbeat_timeout_seconds * 1000)
        conf = {
            "jobmanager.rpc.address": "localhost",
            "jobmanager.bind-host": "localhost",
            "jobmanager.rpc.port": str(free_port()),
            "taskmanager.host": "localhost",
            "taskmanager.bind-host": "localhost",
            "rest.address": "localhost",
            "rest.bind-address": "localhost",
            "rest.port": str(s.rest_port),
            "taskmanager.numberOfTaskSlots": str(s.task_slots),
            "jobmanager.memory.process.size": s.jobmanager_memory,
            "taskmanager.memory.process.size": s.taskmanager_memory,
            # many small exchanges (every SQL stage is keyed): more buffers than the default
            "taskmanager.memory.network.min": "256mb",
            "taskmanager.memory.network.max": "256mb",
            # RocksDB's block cache and write buffers, as in a local job
            "taskmanager.memory.managed.size": self.state_memory,
            "heartbeat.interval": str(min(10000, max(500, heartbeat_ms // 5))),
            "heartbeat.timeout": str(heartbeat_ms),
            # deploying the pipeline's ~140 tasks to a busy TaskManager takes more than 10 s
            "pekko.ask.timeout": "60 s",
            "python.executable": sys.executable,
            "python.client.executable": sys.executable,
            "web.tmpdir": str(self.root / "web"),
            "io.tmp.dirs": str(self.root / "tmp"),
        }
        if self.jvm_options:  # the jobs' JVM tuned as a local job's is
            conf["env.java.opts.taskmanager"] = self.jvm_options
        conf.update(s.conf)
        return conf


def _terminate(pid: int, grace: float = 30.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and alive(pid):
        _reap(pid)
        time.sleep(0.2)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
