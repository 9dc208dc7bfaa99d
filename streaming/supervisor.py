"""Supervising the streaming jobs on the session cluster (the ``udf_stream_supervisor`` DAG).

Plain functions over Flink's REST API and the pipeline's state folders; the DAGs in
``dags/udf_stream_ops.py`` are thin tasks over them, so tests call them the same way.

A mode's jobs are the one pipeline (``pipeline``) or, with ``stream.topics``, the three jobs
apart (``filter_events``, ``filter_activations``, ``aggregation``: :mod:`streaming.apart`);
``stream/<mode>.job.json`` keeps each one's id, recoveries and savepoints by name, and every
function below acts on each job of a mode.

* :func:`deploy` submits a mode's jobs (``udf stream <mode> --cluster --detach``) unless they
  were deployed already; a submission resumes from the newest checkpoint or savepoint.
* :func:`check` reads each deployed job's health: state, age of the last completed
  checkpoint, restarts, the latest exceptions and the worst backpressure, and decides what
  to do (``ok``, ``wait``, ``restart``, ``finished``, ``stopped``; ``draining``: a replay
  apart's aggregation job, stopped with a drain once its topics are read to the end).
* :func:`recover` revives a dead TaskManager of the local cluster and resubmits a failed job
  from its newest checkpoint (a job apart on its own, the others running on); after
  ``max_attempts`` failed recoveries in a row it gives up and the job is reported
  unrecoverable (:func:`alert_owners` emails the recipients).
* :func:`trigger_upgrade`, :func:`savepoint_status`, then :func:`deploy` with ``force``:
  stop-with-savepoint and redeploy from that savepoint.
"""

from __future__ import annotations

import json
import time
from email.message import EmailMessage
from typing import Any

from streaming.cluster import Cluster, ClusterError
from streaming.pipeline import PIPELINE
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
    """``stream/<mode>.job.json``: the jobs last submitted for ``mode`` (None: never)."""
    path = StreamState.of(home, mode).job_file
    try:
        record = dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    if "jobs" not in record:  # written by an earlier version: the one pipeline's job
        record = {"mode": mode, "jobs": {PIPELINE: record}}
    return record


def deployed(home: Home, mode: str) -> dict[str, dict[str, Any]]:
    """``mode``'s jobs on the cluster by name, each with its id, when it was submitted, what it
    resumed from, and the supervisor's notes (recoveries, savepoints); empty: none."""
    record = job_record(home, mode)
    return dict(record["jobs"]) if record else {}


def _update_record(home: Home, mode: str, job: str | None = None, **changes: Any) -> None:
    """Change the mode's record (``job`` None) or one job's entry in it."""
    record = job_record(home, mode) or {"mode": mode, "jobs": {}}
    if job is None:
        record.update(changes)
    else:
        record["jobs"][job] = {**record["jobs"].get(job, {}), **changes}
    StreamState.of(home, mode).write_job_record(record)


def job_state(cluster: Cluster, job_id: str) -> str:
    """The job's state on the cluster; ``UNKNOWN`` when the cluster does not know it."""
    try:
        return str(cluster.rest(f"/jobs/{job_id}")["state"])
    except ClusterError as exc:
        if "HTTP 404" in str(exc):
            return "UNKNOWN"
        raise


def _state_folder(home: Home, mode: str, job: str) -> StreamState:
    """Where ``job`` keeps its checkpoints and savepoints."""
    state = StreamState.of(home, mode)
    if job == PIPELINE:
        return state
    from streaming import apart

    return apart.job_states(state)[job]


def deploy(home: Home, modes: tuple[str, ...] = ("replay",), force: bool = False) -> list[dict]:
    """Submit each mode's jobs unless they were deployed already (all of them with ``force``).

    A deployed job that failed is not resubmitted here: :func:`check` and :func:`recover`
    do that, counting the attempts.
    """
    cluster = Cluster.of(home)
    done = []
    for mode in modes:
        jobs = deployed(home, mode)
        if jobs and not force:
            done += [{"mode": mode, "job": name, "job_id": entry["job_id"], "action": "kept",
                      "state": job_state(cluster, entry["job_id"])}
                     for name, entry in jobs.items()]  # fmt: skip
            continue
        done.append({"action": "submitted", **submit(home, mode)})
    return done


def submit(home: Home, mode: str, jobs: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Submit ``mode``'s jobs to the cluster (detached), each from its newest checkpoint if
    any; ``jobs``: only these of the jobs apart. The jobs submitted, by name."""
    from streaming.runner import Runner
    from udf.settings import load_settings

    runner = Runner(home, load_settings(home), mode, cluster=Cluster.of(home), detach=True,
                    jobs=jobs, echo=lambda text: log.info("stream.submit", mode=mode, text=text))  # fmt: skip
    report = runner.execute()
    log.info("stream.submitted", mode=mode, jobs=report["jobs"])
    return {"mode": mode, "jobs": report["jobs"]}


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
    ``wait``: starting or restarting by Flink's own strategy; ``finished``: a replay's job
    that read everything (once they all have, the replay's feed, checkpoints and topics are
    removed); ``draining``: a replay apart's aggregation job, stopped with a drain once the
    filter jobs have finished and it has read its topics to the end; ``stopped``: stopped
    with a savepoint for an upgrade; ``ok`` otherwise (``stale`` when running without a
    checkpoint for longer than ``max_checkpoint_age_seconds``).
    """
    cluster = Cluster.of(home)
    reports = []
    for mode in MODES:
        record = job_record(home, mode) or {"jobs": {}}
        found = []
        for name, entry in record["jobs"].items():
            report = {"mode": mode, "job": name, **health(cluster, entry["job_id"])}
            report["action"] = _action(report, entry, max_checkpoint_age_seconds)
            found.append(report)
        if mode == "replay" and found and not record.get("finalized"):
            _end_replay(home, cluster, record, found)
        for report in found:
            log.info("stream.health", **{k: v for k, v in report.items() if k != "exceptions"})
        reports += found
    return reports


def _action(report: dict[str, Any], entry: dict[str, Any], max_age: float) -> str:
    state = report["state"]
    if state in ("FAILED", "UNKNOWN") or (state == "CANCELED" and not entry.get("savepoint")):
        return "restart"
    if state == "FINISHED":
        return "stopped" if entry.get("savepoint") else "finished"
    if state in PENDING:
        return "wait"
    age = report["checkpoint_age_seconds"]
    started = entry.get("submitted_at", 0)
    return "stale" if (age if age is not None else time.time() - started) > max_age else "ok"


def _end_replay(home: Home, cluster: Cluster, record: dict[str, Any], reports: list[dict]) -> None:
    """A detached replay's end. The one pipeline ends by itself. Of the jobs apart, a filter
    job that finished is marked so (it is not started again); once both have, and the
    aggregation job has read its topics to the end, it is stopped with a drain (the end of
    event time: every key flushed). Once every job has finished, the replay's feed and
    checkpoints, and its topics once their end is checked again, are removed."""
    from streaming import apart
    from streaming.runner import Runner
    from udf.settings import load_settings

    def runner() -> Runner:  # only for the end (it loads the settings)
        return Runner(home, load_settings(home), "replay")

    by_name = {r["job"]: r for r in reports}
    if PIPELINE in by_name:
        if by_name[PIPELINE]["action"] == "finished":
            runner().finished_replay()
            _update_record(home, "replay", finalized=True)
        return
    filters = [r for r in reports if r["job"] != "aggregation"]
    for report in filters:
        if report["action"] == "finished":
            apart.mark_finished(_state_folder(home, "replay", report["job"]))
    aggregation = by_name["aggregation"]
    if aggregation["action"] == "finished":
        ending = runner()
        apart.finish_replay(ending, ending.saved_topics())  # raises if a record came after
        _update_record(home, "replay", finalized=True)
    elif aggregation["state"] == "RUNNING" and all(r["action"] == "finished" for r in filters):
        entry = record["jobs"]["aggregation"]
        trigger = entry.get("drain_trigger")
        if trigger and _stop_status(cluster, entry["job_id"], trigger) != "failed":
            aggregation["action"] = "draining"
        elif (topics := runner().saved_topics()) is not None and topics.read_to_end():
            _stop(home, cluster, "replay", "aggregation", entry["job_id"], drain=True)
            aggregation["action"] = "draining"


def _stop(home: Home, cluster: Cluster, mode: str, job: str, job_id: str, drain: bool) -> str:
    """Stop ``job`` (``job_id``) with a savepoint into its folder (``drain``: after the end of
    event time); the trigger, kept in its entry (``drain_trigger`` or ``savepoint_trigger``)."""
    target = _state_folder(home, mode, job).savepoints.absolute()
    target.mkdir(parents=True, exist_ok=True)
    answer = cluster.rest(
        f"/jobs/{job_id}/stop", "POST",
        {"targetDirectory": target.as_uri(), "drain": drain, "formatType": "CANONICAL"},
    )  # fmt: skip
    trigger = str(answer["request-id"])
    _update_record(home, mode, job, **{"drain_trigger" if drain else "savepoint_trigger": trigger})
    log.info("stream.stop_with_savepoint", mode=mode, job=job, job_id=job_id,
             trigger=trigger, drain=drain)  # fmt: skip
    return trigger


def _stop_status(cluster: Cluster, job_id: str, trigger: str) -> str:
    """A stop-with-savepoint's outcome: ``in progress``, ``failed`` (its cause logged), or the
    savepoint's path."""
    answer = cluster.rest(f"/jobs/{job_id}/savepoints/{trigger}")
    if answer.get("status", {}).get("id") != "COMPLETED":
        return "in progress"
    operation = answer.get("operation") or {}
    if "failure-cause" in operation:
        cause = (operation["failure-cause"].get("stack-trace", "").splitlines() or [""])[0]
        log.warning("stream.stop_failed", job_id=job_id, cause=cause)
        return "failed"
    return str(operation["location"])


# -- recovery ---------------------------------------------------------------------------------------


def revive(home: Home) -> int | None:
    """Start a TaskManager if the local cluster's died; its pid (None: nothing to do)."""
    return Cluster.of(home).revive_taskmanager()


def recover(
    home: Home, mode: str, job: str = PIPELINE, max_attempts: int = MAX_ATTEMPTS
) -> dict[str, Any]:
    """Resubmit ``mode``'s failed ``job`` from its newest checkpoint or savepoint.

    A job apart is resubmitted alone while the others run on; only when no job of the mode
    has a checkpoint yet do they all start again together, from the beginning. Each failed
    recovery counts towards ``max_attempts``; a job that runs again resets the count
    (:func:`running`). Past the limit the job is ``unrecoverable``: the caller alerts.
    """
    entry = deployed(home, mode).get(job, {})
    attempts = int(entry.get("recoveries", 0))
    if attempts >= max_attempts:
        return {"mode": mode, "job": job, "outcome": "unrecoverable", "attempts": attempts,
                "error": entry.get("last_error", "too many failed recoveries")}  # fmt: skip
    revive(home)
    try:
        submitted = submit(home, mode, _recovered_jobs(home, mode, job))
    except UdfError as exc:
        _update_record(home, mode, job, recoveries=attempts + 1, last_error=str(exc))
        outcome = "unrecoverable" if attempts + 1 >= max_attempts else "failed"
        return {"mode": mode, "job": job, "outcome": outcome, "attempts": attempts + 1,
                "error": str(exc)}  # fmt: skip
    _update_record(home, mode, job, recoveries=attempts + 1)
    return {"job": job, "outcome": "resubmitted", "attempts": attempts + 1, **submitted}


def _recovered_jobs(home: Home, mode: str, job: str) -> tuple[str, ...] | None:
    """What a recovery of ``job`` submits: the job alone, when it is one of the jobs apart and
    the mode has something to resume from; else all of the mode's jobs (the others, if any
    still run, are cancelled first: a start from the beginning makes new topics)."""
    if job == PIPELINE:
        return None
    from streaming import apart

    if apart.resume_point(StreamState.of(home, mode)) is not None:
        return (job,)
    cluster = Cluster.of(home)
    for name, entry in deployed(home, mode).items():
        if job_state(cluster, entry["job_id"]) in ALIVE:
            log.info("stream.cancel_for_fresh_start", mode=mode, job=name)
            cluster.rest(f"/jobs/{entry['job_id']}?mode=cancel", "PATCH")
    return None


def running(home: Home, mode: str) -> bool:
    """Whether all of ``mode``'s jobs run (or finished): a sensor's poke. Raises when one
    failed again."""
    jobs = deployed(home, mode)
    if not jobs:
        raise SupervisionError(f"no {mode} job was deployed in {home.root}")
    cluster = Cluster.of(home)
    for name, entry in jobs.items():
        state = job_state(cluster, entry["job_id"])
        if state in ("FAILED", "CANCELED", "UNKNOWN") and not entry.get("savepoint"):
            raise SupervisionError(f"the {mode} job {name} ({entry['job_id']}) is {state}")
        if state not in ("RUNNING", "FINISHED"):
            return False
        if state == "RUNNING":  # is every task running, or done (a bounded source), not just
            vertices = cluster.rest(f"/jobs/{entry['job_id']}").get("vertices", [])  # scheduled?
            if any(v.get("status") not in ("RUNNING", "FINISHED") for v in vertices):
                return False
    for name in jobs:
        _update_record(home, mode, name, recoveries=0)
    return True


# -- upgrades ---------------------------------------------------------------------------------------


def trigger_upgrade(home: Home, mode: str) -> dict[str, Any]:
    """Stop each of ``mode``'s running jobs with a savepoint (no drain: the redeployed jobs
    carry on); their triggers by name."""
    jobs = deployed(home, mode)
    if not jobs:
        raise SupervisionError(f"no {mode} job was deployed in {home.root}")
    cluster = Cluster.of(home)
    triggers = {name: _stop(home, cluster, mode, name, entry["job_id"], drain=False)
                for name, entry in jobs.items()
                if job_state(cluster, entry["job_id"]) != "FINISHED"}  # fmt: skip
    return {"mode": mode, "triggers": triggers}


def savepoint_status(home: Home, mode: str) -> dict[str, str] | None:
    """Each stopped job's savepoint path, by name, once every stop completed: its savepoint
    taken and the job ended (None: still in progress; Flink reports the savepoint a moment
    before the job has finished). Raises if one failed."""
    cluster = Cluster.of(home)
    stopping = {name: entry for name, entry in deployed(home, mode).items()
                if entry.get("savepoint_trigger")}  # fmt: skip
    if not stopping:
        raise SupervisionError(f"no savepoint was triggered for the {mode} jobs")
    found = {}
    for name, entry in stopping.items():
        outcome = entry.get("savepoint") or _stop_status(
            cluster, entry["job_id"], entry["savepoint_trigger"]
        )
        if outcome == "failed":
            raise SupervisionError(f"stop-with-savepoint of the {mode} job {name} failed "
                                   "(the job runs on; its log has the cause)")  # fmt: skip
        if outcome != "in progress" and job_state(cluster, entry["job_id"]) not in ALIVE:
            _update_record(home, mode, name, savepoint=outcome)
            found[name] = outcome
    return found if len(found) == len(stopping) else None


def upgrade(home: Home, mode: str, timeout: float = 300.0) -> dict[str, Any]:
    """Stop with a savepoint, wait for it, redeploy from it (for the command line and tests;
    the DAG waits in a reschedule-mode sensor instead)."""
    trigger_upgrade(home, mode)
    deadline = time.monotonic() + timeout
    while (locations := savepoint_status(home, mode)) is None:
        if time.monotonic() > deadline:
            raise SupervisionError(f"the savepoints of the {mode} jobs took over {timeout:.0f} s")
        time.sleep(1)
    return {"savepoints": locations, **submit(home, mode)}


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
        log.warning("stream.unrecoverable_no_recipients", jobs=[_named(f) for f in failures])
        return []
    message = EmailMessage()
    message["From"] = alerts.email_from
    message["To"] = ", ".join(alerts.recipients)
    modes = ", ".join(_named(f) for f in failures)
    message["Subject"] = f"[udf] streaming job cannot be recovered: {modes}"
    lines = [f"The supervisor of {home.root} gave up on these streaming jobs:", ""]
    for f in failures:
        lines.append(f"- {_named(f)}: {f.get('error') or f.get('outcome')} "
                     f"(after {f.get('attempts', 0)} recoveries)")  # fmt: skip
    lines += ["", "Their checkpoints are kept under stream/<mode>/; after fixing the cause, "
              "`udf stream <mode> --cluster --detach` resumes from the newest one."]  # fmt: skip
    message.set_content("\n".join(lines))
    email_sender(alerts)(message)
    log.warning("stream.unrecoverable_alerted", jobs=modes, to=message["To"])
    return list(alerts.recipients)


def _named(failure: dict[str, Any]) -> str:
    """``run`` for the one pipeline, ``run/aggregation`` for a job apart."""
    job = failure.get("job", PIPELINE)
    return failure["mode"] if job == PIPELINE else f"{failure['mode']}/{job}"
