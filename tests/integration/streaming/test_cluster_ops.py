"""Issue 14's acceptance for the Flink operations: on a real session cluster (``udf flink up``).

* **TaskManager kill.** The replay runs on the cluster, its events held to
  ``EVENTS_PER_SECOND`` (``stream.source.rate_limits``) so that it cannot finish before the
  kill; once a checkpoint completed, the TaskManager JVM gets SIGKILL. The supervisor, called as the ``udf_stream_supervisor`` DAG's
  tasks call it (revive the TaskManager, deploy, check, recover, wait), resubmits the job from
  its newest checkpoint, and the final rows equal batch (``udf compute``) exactly.
* **Savepoint upgrade.** The unbounded ``run`` job is stopped with a savepoint
  (``udf_stream_upgrade``'s tasks) and redeployed from it; the rows then equal batch: nothing
  lost, nothing doubled. (A bounded replay of this small workload can finish while the stop
  is under way: the savepoint then fails, so the test uses the job that never finishes.)
* **A remote target.** With ``execution.target: remote`` in ``stream.flink_conf`` (the docker
  stack's settings), ``udf stream replay`` without ``--cluster`` runs its job on that cluster.
* **The jobs apart on the cluster** (issue 12). With ``stream.topics`` (tansu), ``udf stream
  replay --cluster`` submits the two filter jobs and the aggregation job to the cluster,
  follows them to the end, and the rows equal batch. Deployed detached by the supervisor, a
  failed job apart is resubmitted alone and the replay drained by its checks; an upgrade
  stops and redeploys each job with its own savepoint.

The cluster is the session's (``flink_cluster``); each test has its own home (a copy of the
prepared one) pointing at it through ``flink.dir`` and ``flink.rest_port``, and starts as the
supervisor DAG does, by reviving the TaskManager if an earlier test left it dead.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streaming.pipeline import PIPELINE
from tests.support.kafka_brokers import Broker
from tests.support.streaming import (
    JOBS_APART,
    Prepared,
    apart_home,
    assert_stream_equals_batch,
    finish,
    json_report,
    rows_of,
    start_stream,
    topic_names,
)
from udf.home import Home

pytestmark = [pytest.mark.flink, pytest.mark.spark, pytest.mark.slow]

CLUSTER = {"task_slots": 6}  # the jobs apart: three jobs of parallelism 2
# the workload's ~25,000 events take >= 60 s at this rate: the replay still runs at the kill
# (unthrottled it can read everything before its first checkpoint is seen, and a finished job
# does not fail when its TaskManager dies)
EVENTS_PER_SECOND = 400.0


@pytest.fixture(scope="session")
def flink_cluster(prepared: Prepared) -> Iterator[dict[str, Any]]:
    """One session cluster for these tests (``udf flink up`` / ``down``, for real)."""
    from streaming.cluster import free_port
    from tests.support.streaming import udf

    flink = {**CLUSTER, "dir": str(prepared.root / "flink"), "rest_port": free_port()}
    home = Home.resolve(prepared.root / "cluster-home").ensure()
    (home.root / "settings.yaml").write_text(yaml.safe_dump({"flink": flink}))
    udf("--home", str(home.root), "flink", "up")
    try:
        yield flink
    finally:
        udf("--home", str(home.root), "flink", "down")


def cluster_home(prepared: Prepared, name: str, flink: dict[str, Any], **stream: Any) -> Home:
    """A copy of the prepared home on the session cluster (``stream``: more stream settings),
    its TaskManager alive (:func:`on_cluster`)."""
    return on_cluster(prepared.home(name), flink, **stream)


def on_cluster(home: Home, flink: dict[str, Any], **stream: Any) -> Home:
    """``home`` pointed at the session cluster (``stream``: more stream settings), its
    TaskManager alive (the supervisor DAG's first task, ``revive_taskmanager``)."""
    from streaming import supervisor

    settings = yaml.safe_load((home.root / "settings.yaml").read_text())
    settings["stream"] = {**settings.get("stream", {}), **stream}
    (home.root / "settings.yaml").write_text(yaml.safe_dump({**settings, "flink": flink}))
    supervisor.revive(home)
    return home


def until(
    condition: Callable[[], Any], timeout: float, what: str, seen: Callable[[], Any] = lambda: None
) -> Any:
    """``condition()`` once it is truthy; fails after ``timeout`` s with what ``seen()`` shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {seen()}")


def checkpointed(home: Home, mode: str = "replay", job: str = PIPELINE) -> dict[str, Any] | None:
    """``job``'s entry in the job record once it has a completed checkpoint and rows were
    written.

    Until then the supervisor runs every few seconds, as its DAG would: on a busy machine
    a job can fail before its first checkpoint (a TaskManager too starved to answer its
    heartbeats), and the supervisor resubmits it.
    """
    from streaming import supervisor

    entry = supervisor.deployed(home, mode)[job]
    folder = home.root / "stream" / mode / ("" if job == PIPELINE else f"jobs/{job}")
    if any((folder / "checkpoints" / entry["job_id"]).glob("chk-*/_metadata")) and rows_of(
        home, "stream"
    ):
        return entry
    if mode == "replay" and time.monotonic() % 10 < 1:
        supervise(home)
    return None


def supervise(home: Home) -> tuple[list[dict], list[dict]]:
    """One ``udf_stream_supervisor`` run, its tasks in the DAG's order (the sensor pokes)."""
    from streaming import supervisor

    supervisor.revive(home)  # revive_taskmanager
    supervisor.deploy(home, ("replay",))  # deploy
    reports = supervisor.check(home)  # check
    outcomes = [supervisor.recover(home, r["mode"], r["job"])
                for r in reports if r["action"] == "restart"]  # fmt: skip
    for o in outcomes:  # wait_recovered: a reschedule-mode sensor's pokes
        if o["outcome"] == "resubmitted":
            until(lambda m=o["mode"]: supervisor.running(home, m), 300, f"{o['mode']} to run")
    supervisor.alert_owners(home, [o for o in outcomes if o["outcome"] == "unrecoverable"])
    return reports, outcomes


def finished(home: Home) -> bool:
    from streaming import supervisor

    return any(r["action"] == "finished" for r in supervisor.check(home))


def test_taskmanager_sigkill_mid_replay_supervisor_recovers_and_equals_batch(
    prepared: Prepared, flink_cluster: dict[str, Any]
) -> None:
    from streaming import supervisor
    from streaming.cluster import Cluster, alive

    limits = {"rate_limits": {"events": EVENTS_PER_SECOND}}
    home = cluster_home(prepared, "tm-kill", flink_cluster, source=limits)
    cluster = Cluster.of(home)
    reports, outcomes = supervise(home)  # the first run deploys the replay
    assert reports[0]["state"] in supervisor.ALIVE and outcomes == []
    first = until(lambda: checkpointed(home), 600, "a checkpoint and the first rows")

    victim = cluster.pid("taskmanager")
    assert victim is not None
    # the TaskManager's JVM runs with the stream's JVM options, as a local job's does
    from udf.settings import StreamSettings

    args = Path(f"/proc/{victim}/cmdline").read_bytes().decode().split("\0")
    assert set(StreamSettings().jvm_options.split()) <= set(args), args
    # not finished (a job starved into failing on its own is recovered just the same)
    assert supervisor.check(home)[0]["state"] != "FINISHED", "the replay still reads at the kill"
    os.kill(victim, signal.SIGKILL)
    until(lambda: not alive(victim), 30, "the TaskManager to die")
    # the JobManager notices the lost TaskManager; with no restart attempts left the job fails
    until(lambda: supervisor.check(home)[0]["action"] == "restart", 180, "the job to fail",
          seen=lambda: supervisor.check(home)[0])  # fmt: skip

    reports, outcomes = supervise(home)
    assert reports[0]["job_id"] == first["job_id"] and reports[0]["state"] == "FAILED"
    assert reports[0]["exceptions"], "the failure's exception is reported"
    assert cluster.running("taskmanager") and cluster.pid("taskmanager") != victim  # revived
    (outcome,) = outcomes
    (resubmitted,) = outcome["jobs"].values()
    assert outcome["outcome"] == "resubmitted" and resubmitted["job_id"] != first["job_id"]
    assert "/chk-" in resubmitted["resumed_from"]  # from the checkpoint, not the beginning

    until(lambda: finished(home), 900, "the resumed replay to finish")
    assert_stream_equals_batch(home, prepared.dates)
    state = home.root / "stream" / "replay"
    assert not (state / "feed").exists() and not (state / "checkpoints").exists()


def stop_with_savepoints(home: Home, mode: str) -> dict[str, str]:
    """``udf_stream_upgrade``'s stop_with_savepoint and wait_savepoint (with the task's retry:
    a savepoint can fail, e.g. a task's local snapshot, and the job then runs on); each
    job's savepoint by name."""
    from streaming import supervisor

    for attempt in range(3):
        supervisor.trigger_upgrade(home, mode)
        try:
            return dict(until(lambda: supervisor.savepoint_status(home, mode), 300, "savepoints"))
        except supervisor.SupervisionError:
            if attempt == 2:
                raise
            until(lambda: supervisor.running(home, mode), 120, "the jobs to run on")
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "apart", [False, pytest.param(True, marks=pytest.mark.kafka)], ids=["one pipeline", "apart"]
)
def test_stop_with_savepoints_and_redeploy_equals_batch(
    prepared: Prepared, flink_cluster: dict[str, Any], request: pytest.FixtureRequest, apart: bool
) -> None:
    """``udf_stream_upgrade`` on the unbounded ``run`` (a replay may finish during the stop: a
    race): each job stopped with its own savepoint and redeployed from it (the jobs apart:
    each of the three); the rows then equal batch."""
    from streaming import supervisor
    from tests.support.streaming import differences

    if apart:
        broker, jars = (request.getfixturevalue(f) for f in ("kafka_broker", "connector_jars"))
        home = on_cluster(apart_home(prepared, "upgrade-apart", broker, jars), flink_cluster)
    else:
        home = cluster_home(prepared, "upgrade", flink_cluster)
    names = sorted(JOBS_APART if apart else (PIPELINE,))
    deployed = supervisor.deploy(home, ("run",))[0]
    assert deployed["action"] == "submitted" and sorted(deployed["jobs"]) == names
    assert all(job["resumed_from"] is None for job in deployed["jobs"].values())
    last = "aggregation" if apart else PIPELINE
    first = until(lambda: checkpointed(home, "run", last), 600, "a checkpoint and the first rows")

    locations = stop_with_savepoints(home, "run")
    assert sorted(locations) == names
    assert all(Path(p.removeprefix("file:")).joinpath("_metadata").exists()
               for p in locations.values())  # fmt: skip
    assert {r["job"]: r["action"] for r in supervisor.check(home)} == dict.fromkeys(
        names, "stopped"
    )
    redeployed = supervisor.submit(home, "run")["jobs"]  # redeploy
    assert redeployed[last]["job_id"] != first["job_id"]
    assert {name: job["resumed_from"] for name, job in redeployed.items()} == {
        name: path.removeprefix("file:").rstrip("/") for name, path in locations.items()
    }  # fmt: skip
    until(lambda: supervisor.running(home, "run"), 300, "the redeployed jobs to run")

    batch = rows_of(home, "batch")
    until(lambda: not differences(batch, rows_of(home, "stream")), 600, "stream rows = batch",
          seen=lambda: differences(batch, rows_of(home, "stream"))[:5])  # fmt: skip
    stop_with_savepoints(home, "run")  # nothing left running on the shared cluster
    assert_stream_equals_batch(home, prepared.dates)


@pytest.mark.kafka
def test_a_replay_with_the_jobs_apart_on_the_cluster_equals_batch(
    prepared: Prepared, flink_cluster: dict[str, Any], kafka_broker: Broker, connector_jars: Path
) -> None:
    from streaming.cluster import Cluster

    home = apart_home(prepared, "cluster-apart", kafka_broker, connector_jars)
    on_cluster(home, flink_cluster)  # (an earlier test may have left the TaskManager dead)
    before = {j["jid"] for j in Cluster.of(home).rest("/jobs/overview")["jobs"]}

    process = start_stream(home, "replay", "--cluster", "--format", "json")
    out = finish(process, home, "replay", timeout=900)
    report = json_report(out)
    assert report["status"] == "FINISHED"
    ran = {j["name"]: j["state"] for j in Cluster.of(home).rest("/jobs/overview")["jobs"]
           if j["jid"] not in before}  # fmt: skip
    assert ran == {f"udf stream replay {job}": "FINISHED" for job in JOBS_APART}
    assert_stream_equals_batch(home, prepared.dates)
    assert not topic_names(kafka_broker, "test-cluster-apart"), "a finished replay's topics go"


def test_a_replay_with_a_remote_target_runs_on_that_cluster_and_equals_batch(
    prepared: Prepared, flink_cluster: dict[str, Any]
) -> None:
    """``stream.flink_conf`` with ``execution.target: remote`` (the docker stack's settings) and
    no ``--cluster``: the command submits its job to that JobManager and follows it there.

    The home's metadata store is named only by the command's ``$UDF_METADATA_URL``, which the
    TaskManager (started without it) does not have: the sinks use the command's store, and
    make no ``metadata.db`` in the home (as SQLite would on opening the home's default)."""
    from streaming.cluster import Cluster

    remote = {"execution.target": "remote", "rest.address": "localhost",
              "rest.port": str(flink_cluster["rest_port"])}  # fmt: skip
    home = cluster_home(prepared, "remote-target", flink_cluster, flink_conf=remote)
    elsewhere = home.root.parent / "remote-target-metadata.db"
    (home.root / "metadata.db").rename(elsewhere)
    before = {j["jid"] for j in Cluster.of(home).rest("/jobs/overview")["jobs"]}
    process = start_stream(home, "replay", env={"UDF_METADATA_URL": f"sqlite:///{elsewhere}"})
    out = finish(process, home, "replay", timeout=900)
    ran = [j for j in Cluster.of(home).rest("/jobs/overview")["jobs"] if j["jid"] not in before]
    assert [(j["name"], j["state"]) for j in ran] == [("udf stream replay", "FINISHED")], out
    assert_stream_equals_batch(home, prepared.dates)
    assert not (home.root / "metadata.db").exists(), "the sinks used the command's store"


def replay_to_its_end(home: Home) -> list[dict[str, str]]:
    """The supervisor's checks every second, as its DAG's would, until every job of the replay
    has finished (the checks drain the aggregation job); the actions each check saw."""
    from streaming import supervisor

    seen: list[dict[str, str]] = []
    until(lambda: seen.append({r["job"]: r["action"] for r in supervisor.check(home)})
          or set(seen[-1].values()) == {"finished"}, 900, "the detached replay to end",
          seen=lambda: seen[-1])  # fmt: skip
    return seen


@pytest.mark.kafka
def test_the_supervisor_drains_a_detached_replay_apart_and_it_equals_batch(
    prepared: Prepared, flink_cluster: dict[str, Any], kafka_broker: Broker, connector_jars: Path
) -> None:
    """The jobs apart deployed detached: the supervisor's checks mark the filter jobs finished,
    drain the aggregation job once it has read its topics, then remove the replay's state
    and topics."""
    home = apart_home(prepared, "detached", kafka_broker, connector_jars)
    on_cluster(home, flink_cluster)
    reports, outcomes = supervise(home)  # its deploy submits the three jobs, detached
    assert sorted(r["job"] for r in reports) == sorted(JOBS_APART) and outcomes == []
    seen = replay_to_its_end(home)
    assert any(s["aggregation"] == "draining" for s in seen), "the supervisor drained it"
    assert_stream_equals_batch(home, prepared.dates)
    assert not topic_names(kafka_broker, "test-detached"), "a finished replay's topics go"
    assert not (home.root / "stream" / "replay" / "jobs").exists()


@pytest.mark.kafka
def test_the_supervisor_resubmits_a_failed_job_apart_alone_from_its_checkpoint(
    prepared: Prepared, flink_cluster: dict[str, Any], kafka_broker: Broker, connector_jars: Path
) -> None:
    """A detached replay apart whose aggregation job fails: ``recover`` resubmits it alone from
    its checkpoint while the filter jobs run on, the replay then runs to its end, and the
    rows equal batch."""
    from streaming import supervisor
    from streaming.cluster import Cluster

    limits = {"rate_limits": {"events": EVENTS_PER_SECOND}}  # still reading at the failure
    home = apart_home(prepared, "recovered", kafka_broker, connector_jars, source=limits)
    on_cluster(home, flink_cluster)
    supervise(home)
    first = supervisor.deployed(home, "replay")
    until(lambda: checkpointed(home, job="aggregation"), 600, "an aggregation checkpoint")

    # the aggregation job ends without a savepoint (cancelled from outside): it fails
    Cluster.of(home).rest(f"/jobs/{first['aggregation']['job_id']}?mode=cancel", "PATCH")
    actions = lambda: {r["job"]: r["action"] for r in supervisor.check(home)}  # noqa: E731
    until(lambda: actions()["aggregation"] == "restart", 120, "the cancel", seen=actions)
    assert actions()["filter_events"] in ("ok", "stale"), "the filter jobs run on"
    _, outcomes = supervise(home)  # its wait_recovered: every job runs
    (outcome,) = outcomes
    assert outcome["job"] == "aggregation" and outcome["outcome"] == "resubmitted", outcome
    assert "/chk-" in outcome["jobs"]["aggregation"]["resumed_from"]  # from its checkpoint
    assert set(outcome["jobs"]) == {"aggregation"}, "the filter jobs were not resubmitted"
    now = supervisor.deployed(home, "replay")
    assert {n: now[n]["job_id"] for n in JOBS_APART if n != "aggregation"} == {
        n: first[n]["job_id"] for n in JOBS_APART if n != "aggregation"
    }  # fmt: skip
    assert now["aggregation"]["job_id"] != first["aggregation"]["job_id"]
    replay_to_its_end(home)  # and leaves nothing running on the shared cluster
    assert_stream_equals_batch(home, prepared.dates)
    assert not topic_names(kafka_broker, "test-recovered"), "a finished replay's topics go"
