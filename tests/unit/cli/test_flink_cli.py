"""``udf flink up|down|status`` and ``udf stream --cluster``: the error cases, without a JVM.

The cluster's real start and stop run in tests/integration/streaming/test_cluster_ops.py.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from streaming.cluster import Cluster
from udf.cli import main
from udf.home import Home


def run(home: Home, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--home", str(home.root), *args])
    return result.exit_code, result.output


def settings(home: Home, **flink: object) -> None:
    (home.root / "settings.yaml").write_text(yaml.safe_dump({"flink": flink}))


@pytest.fixture
def busy_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_status_and_down_when_not_running(home: Home) -> None:
    code, out = run(home, "flink", "status")
    assert code == 1 and "no Flink cluster is running" in out and "udf flink up" in out
    code, out = run(home, "flink", "down")
    assert code == 1 and "no Flink cluster is running" in out


def test_up_refuses_a_busy_port(home: Home, busy_port: int) -> None:
    settings(home, rest_port=busy_port)
    code, out = run(home, "flink", "up")
    assert code == 1
    assert f"port {busy_port} is in use" in out and "flink.rest_port" in out
    assert not (home.root / "flink" / "jobmanager.pid").exists()  # nothing was started


def test_up_refuses_when_already_running(home: Home) -> None:
    # a live process in the pid file stands for a running JobManager
    (home.root / "flink").mkdir()
    (home.root / "flink" / "jobmanager.pid").write_text(f"{os.getpid()}\n")
    code, out = run(home, "flink", "up")
    assert code == 1 and "already running" in out and f"jobmanager pid {os.getpid()}" in out
    # status sees it (its REST API does not answer: reported, not a crash)
    code, out = run(home, "flink", "status", "--format", "json")
    assert code == 0 and '"running": true' in out and "unreachable" in out


def test_a_dead_pid_is_not_running(home: Home, tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (home.root / "flink").mkdir()
    (home.root / "flink" / "taskmanager.pid").write_text(done.stdout)
    cluster = Cluster.of(home)
    assert not cluster.running("taskmanager")
    assert cluster.revive_taskmanager() is None  # no JobManager: nothing to revive into
    code, out = run(home, "flink", "down")
    assert code == 1 and "no Flink cluster is running" in out


def test_flink_settings_forbid_unknown_keys_and_report_all(home: Home) -> None:
    settings(home, rest_prot=1, task_slots=0)
    code, out = run(home, "flink", "status")
    assert code == 1 and "2 config errors" in out
    assert "flink.rest_prot" in out and "flink.task_slots" in out


def test_cluster_config_uses_the_settings(home: Home) -> None:
    settings(home, rest_port=18399, task_slots=3, conf={"parallelism.default": "3"},
             dir=str(home.root / "shared-flink"))  # fmt: skip
    cluster = Cluster.of(home)
    conf = cluster.config()
    assert conf["rest.port"] == "18399" and conf["rest.address"] == "localhost"
    assert conf["taskmanager.numberOfTaskSlots"] == "3" and conf["parallelism.default"] == "3"
    assert conf["python.executable"] == sys.executable
    assert int(conf["jobmanager.rpc.port"]) > 0  # a free port, not Flink's fixed 6123
    assert cluster.rest_url == "http://localhost:18399"
    assert cluster.root == home.root / "shared-flink"


def test_the_cluster_taskmanager_gets_the_stream_state_memory_unless_conf_sets_its_own(
    home: Home,
) -> None:
    assert Cluster.of(home).config()["taskmanager.memory.managed.size"] == "1024m"
    (home.root / "settings.yaml").write_text("stream:\n  state_memory: 1536m\n")
    assert Cluster.of(home).config()["taskmanager.memory.managed.size"] == "1536m"
    (home.root / "settings.yaml").write_text(
        "stream:\n  state_memory: 1536m\n"
        "flink:\n  conf:\n    taskmanager.memory.managed.size: 512m\n"
    )
    assert Cluster.of(home).config()["taskmanager.memory.managed.size"] == "512m"


def test_the_cluster_taskmanager_gets_the_stream_jvm_options_unless_conf_sets_its_own(
    home: Home,
) -> None:
    (home.root / "settings.yaml").write_text("stream:\n  jvm_options: -XX:+UseSerialGC -Xss2m\n")
    assert Cluster.of(home).config()["env.java.opts.taskmanager"] == "-XX:+UseSerialGC -Xss2m"
    (home.root / "settings.yaml").write_text(
        "stream:\n  jvm_options: -XX:+UseSerialGC\n"
        "flink:\n  conf:\n    env.java.opts.taskmanager: -XX:+UseG1GC\n"
    )
    assert Cluster.of(home).config()["env.java.opts.taskmanager"] == "-XX:+UseG1GC"


def test_stream_cluster_options(home: Home) -> None:
    code, out = run(home, "stream", "replay", "--detach")
    assert code == 2 and "--detach needs --cluster" in out
    code, out = run(home, "stream", "replay", "--cluster")
    assert code == 1 and "no Flink cluster is running" in out
