"""Issue 14's acceptance: the metadata database (PostgreSQL) restarts during a pipeline run;
the run retries what the restart interrupted and completes with correct results.

A private PostgreSQL server (the system's ``initdb``/``pg_ctl``, as the ``postgres`` user
when the tests run as root, on a port of its own; the shared server on 5432 is left alone)
holds the home's metadata store. ``udf compute`` runs two days of a small workload twice:
once undisturbed (the reference), then with the server restarted (``pg_ctl restart -m
fast``, which drops every connection) while the first day is being computed. The second
run must exit 0 with every metric-day ``done`` and results equal to the reference's.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from tests.support.streaming import udf
from udf.home import Home

pytestmark = [pytest.mark.postgres, pytest.mark.spark, pytest.mark.slow]

BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
DAYS = (date(2026, 1, 1), date(2026, 1, 2))
UDF = str(Path(sys.executable).parent / "udf")


def _port() -> int:
    for port in range(18400, 18500):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18400-18499")


@dataclass
class Server:
    data: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1"
        _as_postgres([f"{BINS[-1]}/pg_ctl", "-D", str(self.data), "-l", str(self.log),
                      "-o", options, "-w", "-t", "60", *args])  # fmt: skip


def _as_postgres(command: list[str]) -> None:
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture
def server() -> Iterator[Server]:
    if not BINS or (os.geteuid() == 0 and not shutil.which("runuser")):
        pytest.skip("no PostgreSQL server binaries")
    root = Path(tempfile.mkdtemp(prefix="udf-pg-"))
    root.chmod(0o777)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = Server(root / "data", _port(), root / "server.log")
    _as_postgres([f"{BINS[-1]}/initdb", "-D", str(server.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8"])  # fmt: skip
    server.ctl("start")
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


def env(home: Home, url: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("UDF_")}
    return {**out, "UDF_HOME": str(home.root), "UDF_METADATA_URL": url}


def compute(home: Home, url: str) -> subprocess.Popen[str]:
    log = (home.root.parent / "compute.log").open("a")
    return subprocess.Popen(
        [UDF, "compute", "--metric-type", "aggregated", "--from", DAYS[0].isoformat(),
         "--through", DAYS[-1].isoformat()],
        env=env(home, url), stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def results(home: Home) -> dict[tuple, dict]:
    from results.stores import open_store
    from udf.settings import load_settings

    with open_store(home, load_settings(home, {})) as store:
        rows = store.read(source="batch", metric_type="aggregated")
    return {r.key(): {**r.to_dict(), "computed_at": 0} for r in rows}


def test_a_metadata_database_restart_mid_run_is_retried_and_the_run_completes(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metadata.repository import MetadataStore

    home = Home.resolve(tmp_path / "home").ensure()
    monkeypatch.setenv("UDF_HOME", str(home.root))
    monkeypatch.setenv("UDF_METADATA_URL", server.url)
    for var in ("UDF_RESULTS_URL", "UDF_RESULTS_STORE", "UDF_WINDOW_DAYS", "UDF_SPAM_CAP"):
        monkeypatch.delenv(var, raising=False)
    (home.root / "settings.yaml").write_text("spark: {conf: {spark.sql.shuffle.partitions: '2'}}\n")
    work = tmp_path / "workload"
    udf("generate", "--out", str(work), "--events", "3000", "--users", "300", "--experiments",
        "3", "--days", "5", "--start", DAYS[0].isoformat(), "--seed", "5", "--spammers", "0")  # fmt: skip
    for topic in ("activations", "events"):
        udf("data", "import", "--topic", topic, *sorted(str(p) for p in (work / topic).glob("*")))
    udf("ramps", "import", str(work / "ramps.csv"))

    reference = compute(home, server.url)
    assert reference.wait(timeout=600) == 0, (home.root.parent / "compute.log").read_text()
    expected = results(home)
    assert expected

    with MetadataStore(server.url) as store:
        before = sum(len(r.events) for r in store.runs(with_events=True))
    run = compute(home, server.url)
    with MetadataStore(server.url) as store:
        deadline = time.monotonic() + 300
        while (
            sum(len(r.events) for r in store.runs(with_events=True)) == before
        ):  # not yet in_progress
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    server.ctl("restart", "-m", "fast")  # every connection dropped, the server down meanwhile
    assert run.poll() is None, "the run ended before the restart: nothing was tested"
    log = home.root.parent / "compute.log"
    assert run.wait(timeout=600) == 0, log.read_text()[-5000:]

    assert results(home) == expected
    with MetadataStore(server.url) as store:
        runs = [r for r in store.runs(with_events=True) if r.ds in DAYS]
    assert runs and {r.state for r in runs} == {"done"}
    assert all(r.events[-1].to_state == "done" for r in runs)
    assert (
        "terminating connection" in server.log.read_text() or "shut down" in server.log.read_text()
    )


def test_a_store_opened_while_the_server_restarts_waits_for_it(server: Server) -> None:
    """A run opens stores as it goes; one opened while the server is down must wait for it
    (as connections of an existing store do) and not fail at once."""
    import threading

    from metadata.repository import MetadataStore

    with MetadataStore(server.url) as store:  # this process has reached the server
        store.runs()
    server.ctl("stop", "-m", "fast")
    later = threading.Timer(3.0, server.ctl, ("start",))
    later.start()
    try:
        started = time.monotonic()
        with MetadataStore(server.url) as store:
            assert store.runs() == []
        assert time.monotonic() - started >= 2.5, "the server was never down: nothing was tested"
    finally:
        later.join()


def test_a_server_never_reached_fails_at_once() -> None:
    from metadata.repository import MetadataStore
    from udf.errors import MetadataError

    started = time.monotonic()
    with pytest.raises(MetadataError, match=r"127\.0\.0\.1:1\b"):
        MetadataStore("postgresql://postgres@127.0.0.1:1/postgres")
    assert time.monotonic() - started < 10
