"""Supervising the streaming jobs on the session cluster (the ``udf_stream_supervisor`` DAG).

Plain functions over Flink's REST API and the pipeline's state folders; the DAGs in
``dags/udf_stream_ops.py`` are thin tasks over them, so tests call them the same way.

* :func:`deploy` submits a mode's job (``udf stream <mode> --cluster --detach``) unless it was
  deployed already; a submission resumes from the mode's newest checkpoint or savepoint.
* :func:`check` reads each deployed job's health: state, age of the last completed
  checkpoint, restarts, the latest exceptions and the worst backpressure, and decides what
  to do (``ok``, ``wait``, ``restart``, ``finished``, ``stopped``).
* :func:`recover` revives a dead TaskManager of the local cluster and resubmits a failed job
  from its newest checkpoint; after ``max_attempts`` failed recoveries in a row it gives up
  and the job is reported unrecoverable (:func:`alert_owners` emails the recipients).
* :func:`trigger_upgrade`, :func:`savepoint_status`, then :func:`deploy` with ``force``:
  stop-with-savepoint and redeploy from that savepoint.
"""

from __future__ import annotations

import json
import time
from email.message import EmailMessage
from typing import Any

from streaming.cluster import Cluster, ClusterError
from streaming.runner import StreamState
from udf.errors import UdfError
from udf.home import Home
from udf.logging import get_logger

log = get_logger(__name__)

MODES = ("replay", "run")
ALIVE = {"INITIALIZING", "CREATED", "RUNNING", "RESTARTING", "CANCELLING", "FAILING",
         "RECONCILING", "SUSPENDED"}  # fmt: skip
PENDING = {"INITIALIZING", "CREATED", "RESTARTING", "RECONCILING", "FAILING", "CANCELLING"}
MAX_ATTEMPTS = 3


class SupervisionError(UdfError):
    """A job cannot be deployed, recovered or upgraded."""


# -- the deployed jobs ------------------------------------------------------------------------------


def job_record(home: Home, mode: str) -> dict[str, Any] | None:
    """``stream/<mode>.job.json``: the job last submitted for ``mode`` (None: never)."""
    path = StreamState.of(home, mode).job_file
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def _update_record(home: Home, mode: str, **changes: Any) -> None:
    path = StreamState.of(home, mode).job_file
    record = {**(job_record(home, mode) or {}), **changes}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def job_state(cluster: Cluster, job_id: str) -> str:
    """The job's state on the cluster; ``UNKNOWN`` when the cluster does not know it."""
    try:
        return str(cluster.rest(f"/jobs/{job_id}")["state"])
    except ClusterError as exc:
        if "HTTP 404" in str(exc):
            return "UNKNOWN"
        raise


def deploy(home: Home, modes: tuple[str, ...] = ("replay",), force: bool = False) -> list[dict]:
    """Submit each mode's job that was never deployed (all of them with ``force``).

    A deployed job that failed is not resubmitted here: :func:`check` and :func:`recover`
    do that, counting the attempts.
    """
    cluster = Cluster.of(home)
    done = []
    for mode in modes:
        record = job_record(home, mode)
        if record and not force:
            state = job_state(cluster, record["job_id"])
            done.append(
                {"mode": mode, "job_id": record["job_id"], "action": "kept", "state": state}
            )
            continue
        done.append({"action": "submitted", **submit(home, mode)})
    return done


def submit(home: Home, mode: str) -> dict[str, Any]:
    """Submit ``mode``'s job to the cluster (detached), from its newest checkpoint if any."""
    from streaming.runner import Runner
    from udf.settings import load_settings

    runner = Runner(home, load_settings(home), mode, cluster=Cluster.of(home), detach=True,
                    echo=lambda text: log.info("stream.submit", mode=mode, text=text))  # fmt: skip
    report = runner.execute()
    log.info("stream.submitted", mode=mode, job_id=report["job_id"],
             resumed_from=report["resumed_from"])  # fmt: skip
    return {"mode": mode, "job_id": report["job_id"], "resumed_from": report["resumed_from"]}


# -- health -----------------------------------------------------------------------------------------


def health(cluster: Cluster, job_id: str) -> dict[str, Any]:
    """State, last completed checkpoint (age in seconds, path), restarts, exceptions, backpressure."""
    state = job_state(cluster, job_id)
    report: dict[str, Any] = {"job_id": job_id, "state": state, "checkpoint_age_seconds": None,
                              "checkpoint": None, "restarts": None, "exceptions": [],
                              "backpressure": None}  # fmt: skip
    if state == "UNKNOWN":
        return report
    checkpoints = cluster.rest(f"/jobs/{job_id}/checkpoints")
    latest = (checkpoints.get("latest") or {}).get("completed") or {}
    if latest:
        report["checkpoint_age_seconds"] = round(
            time.time() - latest["latest_ack_timestamp"] / 1000, 1
        )
        report["checkpoint"] = latest.get("external_path")
    metrics = cluster.rest(f"/jobs/{job_id}/metrics?get=numRestarts")
    report["restarts"] = next((int(float(m["value"])) for m in metrics), None)
    history = cluster.rest(f"/jobs/{job_id}/exceptions?maxExceptions=5")
    entries = (history.get("exceptionHistory") or {}).get("entries") or []
    report["exceptions"] = [
        _cause(e.get("stacktrace") or str(e.get("exceptionName"))) for e in entries
    ]
    if state == "RUNNING":
        report["backpressure"] = _backpressure(cluster, job_id)
    return report


def _cause(stacktrace: str) -> str:
    """The root cause of a Flink exception (its last ``Caused by:``), on one line."""
    lines = stacktrace.splitlines() or [""]
    causes = [line.removeprefix("Caused by:").strip() for line in lines if "Caused by:" in line]
    return (causes[-1] if causes else lines[0].strip())[:300]


def _backpressure(cluster: Cluster, job_id: str) -> str:
    """The worst backpressure level of the job's vertices (ok < low < high)."""
    order = {"ok": 0, "low": 1, "high": 2}
    worst = "ok"
    for vertex in cluster.rest(f"/jobs/{job_id}").get("vertices", []):
        try:
            level = cluster.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/backpressure")
        except ClusterError:
            continue
        found = str(level.get("backpressureLevel") or level.get("backpressure-level") or "ok")
        if order.get(found, 0) > order[worst]:
            worst = found
    return worst


def check(home: Home, max_checkpoint_age_seconds: float = 600.0) -> list[dict[str, Any]]:
    """Every deployed job's health and the action it needs.

    ``restart``: failed, canceled by no one here, or unknown to the cluster (it restarted);
    ``wait``: starting or restarting by Flink's own strategy; ``finished``: a replay that read
    everything (its feed and checkpoints are then removed); ``stopped``: stopped with a
    savepoint for an upgrade; ``ok`` otherwise (``stale`` when running without a checkpoint
    for longer than ``max_checkpoint_age_seconds``).
    """
    cluster = Cluster.of(home)
    reports = []
    for mode in MODES:
        record = job_record(home, mode)
        if record is None:
            continue
        report = {"mode": mode, **health(cluster, record["job_id"])}
        state = report["state"]
        if state in ("FAILED", "UNKNOWN") or (state == "CANCELED" and not record.get("savepoint")):
            action = "restart"
        elif state == "FINISHED" and record.get("savepoint"):
            action = "stopped"
        elif state == "FINISHED":
            action = "finished"
            if mode == "replay" and not record.get("finalized"):
                _finalize_replay(home)
        elif state in PENDING:
            action = "wait"
        else:
            age = report["checkpoint_age_seconds"]
            started = record.get("submitted_at", 0)
            stale = (age if age is not None else time.time() - started) > max_checkpoint_age_seconds
            action = "stale" if stale else "ok"
        report["action"] = action
        log.info("stream.health", **{k: v for k, v in report.items() if k != "exceptions"})
        reports.append(report)
    return reports


def _finalize_replay(home: Home) -> None:
    from streaming.runner import Runner
    from udf.settings import load_settings

    Runner(home, load_settings(home), "replay").finished_replay()
    _update_record(home, "replay", finalized=True)


# -- recovery ---------------------------------------------------------------------------------------


def revive(home: Home) -> int | None:
    """Start a TaskManager if the local cluster's died; its pid (None: nothing to do)."""
    return Cluster.of(home).revive_taskmanager()


def recover(home: Home, mode: str, max_attempts: int = MAX_ATTEMPTS) -> dict[str, Any]:
    """Resubmit ``mode``'s failed job from its newest checkpoint or savepoint.

    Each failed recovery counts towards ``max_attempts``; a job that runs again resets the
    count (:func:`running`). Past the limit the job is ``unrecoverable``: the caller alerts.
    """
    record = job_record(home, mode) or {}
    attempts = int(record.get("recoveries", 0))
    if attempts >= max_attempts:
        return {"mode": mode, "outcome": "unrecoverable", "attempts": attempts,
                "error": record.get("last_error", "too many failed recoveries")}  # fmt: skip
    revive(home)
    try:
        submitted = submit(home, mode)
    except UdfError as exc:
        _update_record(home, mode, recoveries=attempts + 1, last_error=str(exc))
        outcome = "unrecoverable" if attempts + 1 >= max_attempts else "failed"
        return {"mode": mode, "outcome": outcome, "attempts": attempts + 1, "error": str(exc)}
    _update_record(home, mode, recoveries=attempts + 1)
    return {"mode": mode, "outcome": "resubmitted", "attempts": attempts + 1, **submitted}


def running(home: Home, mode: str) -> bool:
    """Whether ``mode``'s job runs (or finished): a sensor's poke. Raises when it failed again."""
    record = job_record(home, mode)
    if record is None:
        raise SupervisionError(f"no {mode} job was deployed in {home.root}")
    state = job_state(Cluster.of(home), record["job_id"])
    if state in ("FAILED", "CANCELED", "UNKNOWN") and not record.get("savepoint"):
        raise SupervisionError(f"the {mode} job {record['job_id']} is {state}")
    if state not in ("RUNNING", "FINISHED"):
        return False
    if state == "RUNNING":  # running: is every task running (not just scheduled)?
        vertices = Cluster.of(home).rest(f"/jobs/{record['job_id']}").get("vertices", [])
        if any(v.get("status") != "RUNNING" for v in vertices):
            return False
    _update_record(home, mode, recoveries=0)
    return True


# -- upgrades ---------------------------------------------------------------------------------------


def trigger_upgrade(home: Home, mode: str) -> dict[str, Any]:
    """Stop ``mode``'s job with a savepoint (no drain: the redeployed job carries on)."""
    record = job_record(home, mode)
    if record is None:
        raise SupervisionError(f"no {mode} job was deployed in {home.root}")
    target = StreamState.of(home, mode).savepoints.absolute()
    target.mkdir(parents=True, exist_ok=True)
    answer = Cluster.of(home).rest(
        f"/jobs/{record['job_id']}/stop", "POST",
        {"targetDirectory": target.as_uri(), "drain": False, "formatType": "CANONICAL"},
    )  # fmt: skip
    trigger = str(answer["request-id"])
    _update_record(home, mode, savepoint_trigger=trigger)
    log.info("stream.stop_with_savepoint", mode=mode, job_id=record["job_id"], trigger=trigger)
    return {"mode": mode, "job_id": record["job_id"], "trigger": trigger}


def savepoint_status(home: Home, mode: str) -> str | None:
    """The savepoint's path once the stop completed (None: still in progress); raises if failed."""
    record = job_record(home, mode) or {}
    trigger = record.get("savepoint_trigger")
    if not trigger:
        raise SupervisionError(f"no savepoint was triggered for the {mode} job")
    answer = Cluster.of(home).rest(f"/jobs/{record['job_id']}/savepoints/{trigger}")
    if answer.get("status", {}).get("id") != "COMPLETED":
        return None
    operation = answer.get("operation") or {}
    if "failure-cause" in operation:
        cause = operation["failure-cause"].get("stack-trace", "").splitlines()[:1]
        raise SupervisionError(f"stop-with-savepoint of the {mode} job failed: {cause}")
    location = str(operation["location"])
    _update_record(home, mode, savepoint=location)
    return location


def upgrade(home: Home, mode: str, timeout: float = 300.0) -> dict[str, Any]:
    """Stop with a savepoint, wait for it, redeploy from it (for the command line and tests;
    the DAG waits in a reschedule-mode sensor instead)."""
    trigger_upgrade(home, mode)
    deadline = time.monotonic() + timeout
    while (location := savepoint_status(home, mode)) is None:
        if time.monotonic() > deadline:
            raise SupervisionError(f"the savepoint of the {mode} job took over {timeout:.0f} s")
        time.sleep(1)
    submitted = submit(home, mode)
    return {"savepoint": location, **submitted}


# -- alerts -----------------------------------------------------------------------------------------


def alert_owners(home: Home, failures: list[dict[str, Any]]) -> list[str]:
    """Email the alert recipients (``alerts.recipients``) about jobs that cannot be recovered.

    A delivery error raises, so the Airflow task fails and is retried; its recipients.
    """
    from streaming.alerts.delivery import email_sender
    from udf.settings import load_settings

    if not failures:
        return []
    alerts = load_settings(home).alerts
    if not alerts.recipients:
        log.warning("stream.unrecoverable_no_recipients", jobs=[f["mode"] for f in failures])
        return []
    message = EmailMessage()
    message["From"] = alerts.email_from
    message["To"] = ", ".join(alerts.recipients)
    modes = ", ".join(f["mode"] for f in failures)
    message["Subject"] = f"[udf] streaming job cannot be recovered: {modes}"
    lines = [f"The supervisor of {home.root} gave up on these streaming jobs:", ""]
    for f in failures:
        lines.append(f"- {f['mode']}: {f.get('error') or f.get('outcome')} "
                     f"(after {f.get('attempts', 0)} recoveries)")  # fmt: skip
    lines += ["", "Their checkpoints are kept under stream/<mode>/; after fixing the cause, "
              "`udf stream <mode> --cluster --detach` resumes from the newest one."]  # fmt: skip
    message.set_content("\n".join(lines))
    email_sender(alerts)(message)
    log.warning("stream.unrecoverable_alerted", jobs=modes, to=message["To"])
    return list(alerts.recipients)
