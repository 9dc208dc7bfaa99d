"""The jobs apart: the two filter jobs and the aggregation job as three Flink jobs joined by
Kafka topics (``stream.topics``; :mod:`streaming.topics`), run for :class:`streaming.runner.Runner`.

Each job keeps its checkpoints and savepoints under ``<state>/jobs/<job>/`` and resumes from
its own newest one. A filter job that ended (its input was bounded: a replay) is marked
``finished`` there and is not started again: everything it wrote is in its topics. One that
had no checkpoint yet starts from the beginning and writes its records again, which the
aggregation job reads as copies (the topics are at least once).

* **Replay.** The filter jobs end with the feed. The aggregation job reads on until it has
  read every topic to its end (:meth:`streaming.topics.Topics.read_to_end`), then it is
  stopped with a drain (the end of event time: every key is flushed one last time). The end
  is checked once more after the drain (:func:`finish_replay`).
* **Paced or aligned replay** (``--rate``, ``stream.source.alignment``). The filter jobs
  follow the feed, which the runner releases at the rate or slice by slice
  (:meth:`Runner.feed_round`); once everything is fed and counted by the pipeline, each
  filter job is drained, and from there it ends as a replay does.
* **Run.** All three run until :meth:`Runner.stop`; then the filter jobs are stopped with a
  savepoint each, then the aggregation job.

Locally the three jobs share the command's mini-cluster; with ``--cluster`` they are
submitted to ``udf flink up``'s session cluster and followed from the command the same way,
or, with ``--detach``, left to :mod:`streaming.supervisor`, which restarts each on its own
(:attr:`Runner.jobs`: start only those) and drains a detached replay's aggregation job.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streaming import job_client
from streaming import progress as progress_mod
from streaming.pacing import TICK_SECONDS
from streaming.pipeline import JOBS_APART, PipelineConfig
from streaming.topics import Topics, topics_of
from udf.errors import InputError
from udf.logging import get_logger

if TYPE_CHECKING:
    from streaming.runner import Runner, SavedPlan, StreamState
    from streaming.sources import Source

log = get_logger(__name__)

END_CHECK_SECONDS = 2.0  # a replay looks this often whether the aggregation job read all


@dataclass
class Job:
    name: str
    state: StreamState  # its checkpoints and savepoints
    env: Any
    snapshot: Path | None  # resumed from
    finished: bool  # a bounded filter job that ended before
    client: Any = None

    @property
    def own_checkpoints(self) -> Path:
        return self.state.checkpoints / str(self.client.get_job_id())


def finished_marker(state: StreamState) -> Path:
    """The file that says a job's bounded input ended (it is not started again)."""
    return state.root / "finished"


def mark_finished(state: StreamState) -> None:
    """Say that the job of ``state`` ended its bounded input: it is not started again."""
    marker = finished_marker(state)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def job_states(state: StreamState) -> dict[str, StreamState]:
    """Each job's folder in the mode's ``state`` folder, by name."""
    from streaming.runner import StreamState

    return {name: StreamState(state.root / "jobs" / name) for name in JOBS_APART}


def resume_point(mode_state: StreamState) -> Path | None:
    """What a resume starts from: the newest snapshot of any job, or a finished job's folder."""
    found = []
    for state in job_states(mode_state).values():
        snapshot = state.latest_snapshot()
        if snapshot is not None:
            found.append(snapshot)
        elif finished_marker(state).exists():
            found.append(state.root)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def refuse_unsupported(runner: Runner) -> None:
    """Refuse, before anything changes, to start jobs apart on a session cluster with too few
    free slots for them (each takes ``max(parallelism, sink_parallelism)`` slots: a job's
    operators share slots) or with no TaskManager."""
    if runner.cluster is not None and runner.cluster.running("jobmanager"):
        stream = runner.settings.stream
        each = max(stream.parallelism, stream.sink_parallelism)
        count = len(runner.jobs or JOBS_APART)
        needed = count * each
        status = runner.cluster.status()
        if status.get("taskmanagers") == 0:
            raise InputError(f"the session cluster at {runner.cluster.rest_url} has no "
                             "TaskManager: `udf flink down` and `up` (or the supervisor DAG's "
                             "revive_taskmanager) start one")  # fmt: skip
        free = status.get("slots_available")
        if isinstance(free, int) and free < needed:
            raise InputError(
                f"the jobs apart need {needed} free task slots on the session cluster "
                f"({count} jobs of {each}), and {runner.cluster.rest_url} has "
                f"{free}: raise flink.task_slots (then `udf flink down` and `up`), or lower "
                "stream.parallelism"
            )


def execute(runner: Runner, saved: SavedPlan, resumed_from: Path | None, source: Source,
            cfg: PipelineConfig) -> dict[str, Any]:  # fmt: skip
    """Build the three jobs, start those not finished, and follow them; the final report."""
    from streaming import pipeline
    from streaming.runner import StreamError

    settings = runner.settings.stream
    assert settings.topics is not None and saved.generation is not None
    assert runner.jobs is None or runner.detach, "only some of the jobs: a supervisor's, detached"
    topics = topics_of(settings.topics, runner.mode, saved.generation, settings.parallelism)
    columns: dict[str, Any] = {}
    jobs, layouts = [], []
    for name, state in job_states(runner.state).items():
        finished = finished_marker(state).exists()
        snapshot = None if finished or resumed_from is None else state.latest_snapshot()
        job_cfg = replace(cfg, checkpoints=state.checkpoints,
                          restore=snapshot.absolute().as_uri() if snapshot else None)  # fmt: skip
        env, t_env = pipeline.environment(job_cfg)
        pipeline.build_apart(name, env, t_env, source, saved.plan, job_cfg, topics, columns)
        layouts.append(f"{name}:{pipeline.state_layout(env)}")
        jobs.append(Job(name, state, env, snapshot, finished))
    layout = hashlib.sha256("\n".join(layouts).encode()).hexdigest()[:16]
    runner.check_layout(saved, layout, resumed_from)  # a fresh start's plan names the topics
    if resumed_from is None:
        topics.create()  # after the plan: the next fresh start removes them

    started = time.monotonic()
    for job in jobs:
        if job.finished or (runner.jobs is not None and job.name not in runner.jobs):
            continue
        try:
            job.client = job.env.execute_async(f"udf stream {runner.mode} {job.name}")
        except Exception as exc:
            _cancel([j for j in jobs if j.client is not None])
            raise StreamError(f"{job.name}: {job_client.not_started(exc, job.snapshot)}") from None
        runner.echo(f"started {job.name} ({'resumed' if job.snapshot else 'from the beginning'})")
    if runner.cluster is not None:
        submitted = {j.name: (j.client, j.snapshot) for j in jobs if j.client is not None}
        runner.record_jobs(submitted)
        if runner.detach:
            return runner.submitted(submitted)
    status = _watch(runner, saved, jobs, topics)
    report = runner.report()
    report.update(mode=runner.mode, status=status, seconds=round(time.monotonic() - started, 1),
                  resumed_from=str(resumed_from) if resumed_from else None,
                  kafka_topics=[topics.name(s) for s in sorted(columns)])  # fmt: skip
    if runner.mode == "replay" and status == "FINISHED":
        finish_replay(runner, topics)
    return report


def finish_replay(runner: Runner, topics: Topics | None) -> None:
    """A replay whose aggregation job finished: once more, had it read every topic to its end
    (committed offsets only move forward, and nothing is written after the filter jobs
    ended)? Then its state and topics go; if a record shows up after the drain, the replay
    fails and keeps them, rather than end with a record never counted."""
    from streaming.runner import StreamError

    if topics is not None and not topics.read_to_end():
        raise StreamError(
            "the aggregation job was drained before it had read every record of its topics "
            f"({topics.settings.bootstrap} showed more afterwards); nothing was removed: "
            "replay again with --fresh"
        )
    runner.finished_replay()
    if topics is not None:
        topics.delete()


def _watch(runner: Runner, saved: SavedPlan, jobs: list[Job], topics: Topics) -> str:
    """Follow the jobs (feeding a run) until the aggregation job ends or :meth:`Runner.stop`;
    the aggregation job's final status."""
    stream = runner.settings.stream
    filters, aggregation = jobs[:-1], jobs[-1]
    next_feed = next_periods = next_echo = next_end_check = time.monotonic()
    drain: threading.Thread | None = None  # a drain that fails (rare) is tried again
    fed_and_read = False  # fed in rounds: the filter jobs are drained then (and again if needed)
    filter_drains: dict[str, threading.Thread] = {}
    while True:
        status = _check(runner, jobs)
        if status is not None:
            break
        now = time.monotonic()
        if runner.stopping.is_set():
            return _shutdown(runner, jobs)
        if runner.follow and now >= next_feed:
            runner.feed_run([j.own_checkpoints for j in filters])
            next_feed = now + stream.feed_interval_seconds
        if runner.follow and now >= next_periods:
            runner.republish(saved)
            next_periods = now + stream.periods_interval_seconds
        if runner.in_rounds and now >= next_feed:
            fed_and_read = fed_and_read or runner.feed_round()
            next_feed = now + TICK_SECONDS
        if fed_and_read and now >= next_end_check:
            for job in filters:
                if not job.finished and not _alive(filter_drains.get(job.name)):
                    if job.name not in filter_drains:
                        runner.echo(f"all fed and read: draining {job.name}")
                    filter_drains[job.name] = _drain(job)
        ended = all(j.finished for j in filters)
        end_check = not runner.follow and ended and not _alive(drain) and now >= next_end_check
        if end_check and topics.read_to_end():
            runner.echo("every topic read to its end: draining the aggregation job")
            drain = _drain(aggregation)
        if now >= next_end_check:
            next_end_check = now + END_CHECK_SECONDS
        if now >= next_echo:
            runner.echo(progress_mod.line(runner.report()))
            for job in jobs:
                if not job.finished:
                    runner.prune(job.state, job.client)
            next_echo = now + 5
        runner.stopping.wait(TICK_SECONDS if runner.in_rounds else 0.5)
    runner.echo(progress_mod.line(runner.report()))
    return status


def _drain(job: Job) -> threading.Thread:
    return job_client.drain_in_background(job.client, job.state.savepoints.absolute().as_uri())


def _alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


def _check(runner: Runner, jobs: list[Job]) -> str | None:
    """Look at each running job: a filter job that finished is marked so; a failed job fails
    the command (the others are cancelled), as a filter job cancelled from outside ends it.
    The aggregation job's status once it has ended, else None."""
    from streaming.runner import StreamError

    for job in jobs:
        if job.finished:
            continue
        status = job_client.status(job.client)
        if status == "FAILED":
            cause = job_client.failure(job.client)
            _cancel([j for j in jobs if j is not job and not j.finished])
            raise StreamError(f"the Flink job {job.name} failed: {cause}")
        if job is jobs[-1] and status in ("FINISHED", "CANCELED"):
            return status
        if status == "FINISHED":
            job.finished = True
            mark_finished(job.state)
            runner.echo(f"{job.name} finished")
        elif status == "CANCELED":
            _cancel([j for j in jobs if not j.finished and j is not job])
            return status
    return None


def _shutdown(runner: Runner, jobs: list[Job]) -> str:
    """Stop the filter jobs, then the aggregation job, each with a savepoint (cancel if that
    fails): the next run resumes each from its own."""
    runner.echo("stopping: taking a savepoint of each job")
    status = "STOPPED"
    for job in jobs:
        if job.finished:
            continue
        try:
            path = job_client.stop_with_savepoint(
                job.client, job.state.savepoints.absolute().as_uri()
            )
            runner.echo(f"stopped {job.name}; savepoint {path}")
        except Exception as exc:  # the job may be failing already: cancel, checkpoints remain
            log.warning("stream.savepoint_failed", job=job.name, error=str(exc).splitlines()[0])
            job.client.cancel().result()
            status = "CANCELED"
    return status


def _cancel(jobs: list[Job]) -> None:
    for job in jobs:
        try:
            job.client.cancel().result()
        except Exception as exc:  # ended already
            log.info("stream.cancel_skipped", job=job.name, error=str(exc).splitlines()[0])
