"""Running the pipeline: ``udf stream replay`` (the whole archive, then stop) and ``run``.

Each mode keeps its state under ``<home>/stream/<mode>/``: the feed, the period snapshots,
the checkpoints, the plan it was started with, the progress files and the dead letters.

* **Resume.** When the folder holds a completed checkpoint (or a savepoint of a stopped run),
  the pipeline restarts from the newest one (``execution.state-recovery.path``) with the plan
  and feed it was started with, so the job graph and its input are the same; otherwise the
  folder is cleared and the pipeline starts from the beginning of the archive. The results
  sink replaces whole slices, so rows written after the checkpoint are rewritten, not added.
  The plan records the built job's state layout (:func:`streaming.pipeline.state_layout`);
  a checkpoint of a job with another layout (another version) is not resumed.
* **Replay** copies every committed archive byte into the feed once, then runs a bounded
  job that ends when it has read them all. A finished replay removes its feed and
  checkpoints; the next replay starts afresh.
* **Paced replay** (``rate``): the feed releases the archive at ``rate`` records/s in
  event-time order (:mod:`streaming.pacing`) to a source that follows the feed; once all is
  fed and read, the job is stopped with a drain (``stop-with-savepoint --drain``: the end of
  event time, so every key is flushed one last time) and cleaned up like a replay.
* **On a session cluster** (``cluster``: ``udf flink up``) the job is submitted to that
  cluster's REST API instead of a local one; its id is kept in ``stream/<mode>.job.json``
  (:meth:`Runner.record_jobs`); with ``detach`` the command returns once the job is
  submitted (``streaming.supervisor`` then watches it).
* **Run** feeds new imports every ``feed_interval_seconds`` and republishes the periods every
  ``periods_interval_seconds``, until :meth:`Runner.stop` (SIGTERM, Ctrl-C): the job is
  stopped with a savepoint that the next run resumes from.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from metadata.periods import DAY_MS
from streaming import job_client
from streaming import progress as progress_mod
from streaming.pacing import TICK_SECONDS, Pacer
from streaming.pipeline import PIPELINE, PipelineConfig
from streaming.plan import StreamPlan, load_plan
from streaming.snapshot import PeriodSnapshots, current_pieces, period_ends
from streaming.source import PartitionFeed, UnifiedSource
from streaming.source.slices import AlignedFeed, TopicProgress
from streaming.topics import Topics, new_generation, topics_of
from udf.config.stream_topics import IntermediateTopics
from udf.errors import ConnectorError, InputError, UdfError
from udf.home import Home
from udf.logging import get_logger
from udf.settings import Settings

log = get_logger(__name__)

Echo = Callable[[str], None]
RESTART_ATTEMPTS = 3


class StreamError(UdfError):
    """The Flink job failed or could not be started."""


@dataclass(frozen=True)
class StreamState:
    """The folder of one mode's pipeline state."""

    root: Path

    @classmethod
    def of(cls, home: Home, mode: str) -> StreamState:
        return cls(home.root / "stream" / mode)

    feed = property(lambda self: self.root / "feed")
    periods = property(lambda self: self.root / "periods")
    checkpoints = property(lambda self: self.root / "checkpoints")
    savepoints = property(lambda self: self.root / "savepoints")
    progress = property(lambda self: self.root / "progress")
    deadletters = property(lambda self: self.root / "deadletter")
    plan_file = property(lambda self: self.root / "plan.pickle")
    # the job on a session cluster (beside the folder: it outlives a fresh start)
    job_file = property(lambda self: self.root.with_suffix(".job.json"))

    def latest_snapshot(self) -> Path | None:
        """The newest completed checkpoint or savepoint (it has its ``_metadata``)."""
        found = [*self.checkpoints.glob("*/chk-*/_metadata"), *self.savepoints.glob("*/_metadata")]
        if not found:
            return None
        return max(found, key=lambda p: p.stat().st_mtime).parent

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def write_job_record(self, record: dict[str, Any]) -> None:
        """Replace ``job_file`` with ``record`` at once (a reader never sees half of it)."""
        import json

        tmp = self.job_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.job_file)


@dataclass(frozen=True)
class SavedPlan:
    plan: StreamPlan
    max_days: int
    rate: float | None = None  # a paced replay's rate: its resume is paced too (same job graph)
    layout: str | None = None  # its job's state layout (streaming.pipeline.state_layout)
    generation: str | None = None  # the jobs apart: their topics' (streaming.topics)
    topics: IntermediateTopics | None = None  # the settings those topics were made with


@dataclass
class Runner:
    home: Home
    settings: Settings
    mode: str  # replay | run
    echo: Echo = field(default=lambda _: None)
    rate: float | None = None  # a paced replay: records/s (streaming.pacing)
    cluster: Any = None  # streaming.cluster.Cluster: submit there instead of a local cluster
    detach: bool = False  # with a cluster: return once the job is submitted
    jobs: tuple[str, ...] | None = None  # the jobs apart, detached: start only these (a recovery)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.state = StreamState.of(self.home, self.mode)
        lateness = round(self.settings.stream.lateness_seconds * 1000)
        self.feed = PartitionFeed(
            self.state.feed, self.home.archive, lateness_ms=lateness,
            count_lines=self.follow or self.paced,
        )  # fmt: skip
        self.pacer = Pacer(self.rate) if self.rate is not None and self.paced else None
        self.aligner: AlignedFeed | None = None  # an aligned replay's feed (made in prepare)
        self._fed_all = False
        self._draining = False
        self._resumed = False
        self._caught_up: tuple[float, int] | None = None
        self.snapshots = PeriodSnapshots(self.state.periods)

    @property
    def follow(self) -> bool:
        return self.mode == "run"

    @property
    def paced(self) -> bool:
        return self.mode == "replay" and self.rate is not None

    @property
    def in_rounds(self) -> bool:
        """A replay whose history is fed round by round (paced or aligned), not all at once."""
        return self.paced or self.aligned

    @property
    def aligned(self) -> bool:
        """A replay of the archive with ``stream.source.alignment``: history fed in
        event-time slices, all topics in lockstep (:mod:`streaming.source.slices`)."""
        source = self.settings.stream.source
        return (self.mode == "replay" and self.rate is None and source.alignment is not None
                and source.live == "archive")  # fmt: skip

    def stop(self) -> None:
        self.stopping.set()

    # -- preparing ------------------------------------------------------------------------------

    def prepare(self, fresh: bool) -> tuple[SavedPlan, Path | None]:
        """The plan and the snapshot to resume from (None: start from the beginning)."""
        snapshot = None if fresh else self._resume_point()
        if snapshot is not None and self.state.plan_file.exists():
            saved = self._saved_plan(snapshot)
            self._resume_pace(getattr(saved, "rate", None))
            self._resumed = True
            self.feed.prepare()
            self._make_aligner()
            self.echo(f"resuming from {snapshot.name} ({snapshot})")
            return saved, snapshot
        self._delete_topics()
        self.state.clear()
        self.state.root.mkdir(parents=True)
        plan = load_plan(self.home, self.settings)
        pieces = current_pieces(self.home, self.settings.window_ms)
        periods = period_ends(pieces)
        self.snapshots.publish(pieces)
        self.feed.prepare()
        self._make_aligner()
        if self.aligner is not None:
            fed = self.aligner.step()
        else:
            fed = self._pace(first=True) if self.paced else self.feed.publish()
        if fed is None and not self.follow:
            raise InputError(f"the archive {self.home.archive} holds no records: import data first")
        # written once the job is built, with its state layout (check_layout)
        generation = new_generation() if self.apart else None
        rate = self.rate if self.paced else None
        topics = self.settings.stream.topics  # kept: the fresh start after removes them
        saved = SavedPlan(plan, self._max_days(periods), rate, generation=generation, topics=topics)
        return saved, None

    @property
    def apart(self) -> bool:
        """The jobs run apart, joined by Kafka topics (``stream.topics``: streaming.apart)."""
        return self.settings.stream.topics is not None

    def _resume_point(self) -> Path | None:
        if self.apart:
            from streaming import apart

            return apart.resume_point(self.state)
        return self.state.latest_snapshot()

    def _delete_topics(self) -> None:
        """Before a fresh start: remove the topics of the generation before, if any."""
        topics = self.saved_topics()
        if topics is not None:
            topics.delete()

    def saved_topics(self) -> Topics | None:
        """The topics of the jobs apart's saved plan, on the broker they were made on (also
        when ``stream.topics`` was removed since); None without such a plan."""
        if not self.state.plan_file.exists():
            return None
        try:
            saved = pickle.loads(self.state.plan_file.read_bytes())
        except Exception:  # another version's plan: its topics are left alone
            return None
        if not isinstance(saved, SavedPlan) or saved.generation is None:
            return None
        made_with = saved.topics or self.settings.stream.topics  # (plans saved before .topics)
        if made_with is None:
            return None
        return topics_of(made_with, self.mode, saved.generation, self.settings.stream.parallelism)

    def _saved_plan(self, snapshot: Path) -> SavedPlan:
        try:
            saved = pickle.loads(self.state.plan_file.read_bytes())
        except Exception:  # saved by a version whose classes differ, or torn by hand
            saved = None
        if not isinstance(saved, SavedPlan):
            raise StreamError(
                job_client.other_version(snapshot, "its plan was saved by another version")
            )
        return saved

    def check_layout(self, saved: SavedPlan, layout: str, snapshot: Path | None) -> None:
        """A fresh start records the built job's state layout with its plan; a resume goes on
        only from a checkpoint of a job with the same layout. Flink itself refuses a
        checkpoint only when an operator it holds state for is gone; one whose state is
        encoded otherwise (a new version of the Java functions, an SQL operator keyed or
        grouped otherwise) it would read as if it were this job's."""
        if snapshot is None:
            saved = replace(saved, layout=layout)
            # owner-only: the topics' Kafka properties may hold credentials (sasl.*)
            fd = os.open(self.state.plan_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as plan:
                plan.write(pickle.dumps(saved))
        elif saved.layout != layout:
            raise StreamError(
                job_client.other_version(snapshot, "its job's operators or state differ")
            )

    def _make_aligner(self) -> None:
        if not self.aligned:
            return
        source = self.settings.stream.source
        assert source.alignment is not None
        self.aligner = AlignedFeed(
            self.feed, round(source.alignment.max_drift_seconds * 1000), self._topic_progress,
            source.timestamp_field, round(source.out_of_orderness_seconds * 1000),
        )  # fmt: skip

    def _topic_progress(self) -> dict[str, TopicProgress]:
        """What the pipeline's progress report says it read: records and the newest time (its
        watermark is taken to be that time: the report carries no watermark)."""
        topics = progress_mod.read(self.state.progress)["topics"]
        return {t: TopicProgress(n.get("records", 0), n.get("max_ts"), n.get("max_ts"))
                for t, n in topics.items()}  # fmt: skip

    def _resume_pace(self, rate: float | None) -> None:
        """Resume a replay as it was started: paced (a source that follows) or not (bounded)."""
        if self.mode != "replay" or rate == self.rate:
            return
        self.echo(f"resuming with the rate it was started with: {rate or 'none'}")
        self.rate = rate
        self.feed.count_lines = self.paced
        self.pacer = Pacer(rate) if rate is not None else None

    def _max_days(self, periods: dict[Any, int]) -> int:
        """Dates one period spans (+ room for re-ramps in a run): the day offsets a record needs."""
        longest = max((_days(s, e) for (_, _, s), e in periods.items()), default=1)
        if not self.follow:
            return longest
        window_days = -(-self.settings.window_ms // DAY_MS)
        return max(longest, 1 + window_days) + 4 * window_days

    # -- running --------------------------------------------------------------------------------

    def execute(self, fresh: bool = False) -> dict[str, Any]:
        """Run the pipeline (one at a time per home and mode); its final progress report."""
        lock_path = self.state.root.with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(
                    f"another `udf stream {self.mode}` is running in {self.home.root}"
                ) from None
            return self._execute(fresh)

    def _execute(self, fresh: bool) -> dict[str, Any]:
        from streaming import pipeline

        if self.apart:
            from streaming import apart

            apart.refuse_unsupported(self)
        if self.detach and self.in_rounds:
            raise InputError("a paced or aligned replay is fed round by round by the command "
                             "that runs it: it cannot --detach")  # fmt: skip
        cluster_conf = self._cluster_conf()  # before anything changes: is the cluster up?
        saved, snapshot = self.prepare(fresh)
        if self.jobs is None:  # reports of an earlier process (not of jobs that run on)
            shutil.rmtree(self.state.progress, ignore_errors=True)
        stream = self.settings.stream
        ttl = saved.plan.state_ttl_ms(stream.state_ttl_days) if self.follow else None
        if self.paced and stream.source.live == "kafka":
            raise InputError(
                "a paced replay (--rate) feeds the archive only: set stream.source.live to "
                "'archive' for it"
            )
        from streaming.kafka_connector import default_cache

        source = UnifiedSource.from_settings(
            self.feed, stream, self.state.periods, self.follow or self.in_rounds,
            jars_cache=default_cache(self.home),
        )  # fmt: skip
        cfg = PipelineConfig(
            home=self.home.with_metadata(self.home.metadata_url), settings=self.settings,
            checkpoints=self.state.checkpoints, deadletters=self.state.deadletters,
            progress=self.state.progress, series_url=self.settings.results_url(self.home),
            max_days=saved.max_days, restore=snapshot.absolute().as_uri() if snapshot else None,
            follow=self.follow or self.in_rounds, state_ttl_ms=ttl, on_rows=stream.rows_hook,
            cluster_conf=cluster_conf, jars=self._jars(source),
        )  # fmt: skip
        if self.apart:
            from streaming import apart

            return apart.execute(self, saved, snapshot, source, cfg)
        env, t_env = pipeline.environment(cfg)
        pipeline.build(env, t_env, source, saved.plan, cfg)
        self.check_layout(saved, pipeline.state_layout(env), snapshot)
        started = time.monotonic()
        try:
            client = env.execute_async(f"udf stream {self.mode}")
        except Exception as exc:
            raise StreamError(job_client.not_started(exc, snapshot)) from None
        self.echo(f"started {self.mode} ({'resumed' if snapshot else 'from the beginning'})")
        if self.cluster is not None:
            self.record_jobs({PIPELINE: (client, snapshot)})
            if self.detach:
                return self.submitted({PIPELINE: (client, snapshot)})
        status = self._watch(client, saved)
        report = self.report()
        report.update(mode=self.mode, status=status, seconds=round(time.monotonic() - started, 1),
                      resumed_from=str(snapshot) if snapshot else None)  # fmt: skip
        if self.mode == "replay" and status == "FINISHED":
            self.finished_replay()
        return report

    def _jars(self, source: UnifiedSource) -> tuple[str, ...]:
        """The jars the job needs: the source's, and the Kafka connector's for the topics."""
        jars = source.jars()
        if self.apart and not jars:
            from streaming.kafka_connector import kafka_connector_jars

            try:
                jars = kafka_connector_jars(source.jars_cache)
            except ConnectorError as exc:
                raise ConnectorError(f"stream.topics is set, but {exc}") from exc
        return tuple(jars)

    def finished_replay(self) -> None:
        """A replay that finished leaves no feed or checkpoints: the next one starts afresh."""
        shutil.rmtree(self.state.feed, ignore_errors=True)
        shutil.rmtree(self.state.checkpoints, ignore_errors=True)
        shutil.rmtree(self.state.savepoints, ignore_errors=True)
        shutil.rmtree(self.state.root / "jobs", ignore_errors=True)  # the jobs apart's
        self.state.plan_file.unlink(missing_ok=True)

    def _cluster_conf(self) -> dict[str, str] | None:
        if self.cluster is None:
            return None
        from streaming.cluster import ClusterError

        if not self.cluster.running("jobmanager"):
            raise ClusterError(
                f"no Flink cluster is running in {self.home.root}: `udf flink up` starts one"
            )
        port = str(self.cluster.settings.rest_port)
        return {"execution.target": "remote", "rest.address": "localhost", "rest.port": port}

    def record_jobs(self, started: dict[str, tuple[Any, Path | None]]) -> None:
        """Keep the ids of the jobs just submitted to the session cluster (by name: the one
        pipeline's or the jobs apart's, each with the snapshot it resumed from) in
        ``stream/<mode>.job.json``, where the supervisor finds them. Starting only some of
        the jobs apart (``jobs``) keeps the others' entries."""
        import json

        record: dict[str, Any] = {"jobs": {}}
        if self.jobs is not None and self.state.job_file.exists():
            record = json.loads(self.state.job_file.read_text())
        record.update(mode=self.mode, rest_url=self.cluster.rest_url)
        for name, entry in _job_entries(started).items():
            record["jobs"][name] = {**entry, "submitted_at": time.time()}
        self.state.write_job_record(record)

    def submitted(self, started: dict[str, tuple[Any, Path | None]]) -> dict[str, Any]:
        """A detached command's report: the jobs it submitted, by name."""
        report = self.report()
        report.update(mode=self.mode, status="SUBMITTED", seconds=0.0,
                      jobs=_job_entries(started), rest_url=self.cluster.rest_url)  # fmt: skip
        return report

    def _watch(self, client: Any, saved: SavedPlan) -> str:
        """Follow the job (feeding a run) until it ends or :meth:`stop`; its final status."""
        next_feed = next_periods = next_echo = time.monotonic()
        stream = self.settings.stream
        while True:
            status = job_client.status(client)
            if status in ("FINISHED", "CANCELED", "FAILED"):
                break
            now = time.monotonic()
            if self.stopping.is_set():
                return self._shutdown(client)
            if self.follow and now >= next_feed:
                self.feed_run([self.state.checkpoints / str(client.get_job_id())])
                next_feed = now + stream.feed_interval_seconds
            if self.in_rounds and now >= next_feed:
                self._pace_or_drain(client)
                next_feed = now + TICK_SECONDS
            if self.follow and now >= next_periods:
                self.republish(saved)
                next_periods = now + stream.periods_interval_seconds
            if now >= next_echo:
                self.echo(progress_mod.line(self.report()))
                self.prune(self.state, client)
                next_echo = now + 5
            self.stopping.wait(TICK_SECONDS if self.in_rounds else 0.5)
        if status == "FAILED":
            raise StreamError(f"the Flink job failed: {job_client.failure(client)}")
        self.echo(progress_mod.line(self.report()))
        return status

    def feed_run(self, readers: list[Path]) -> None:
        """A run's feeding step: publish the archive's new imports (unless the tail comes from
        Kafka) and retire what the jobs reading the feed (``readers``) are past."""
        if self.settings.stream.source.live == "archive":
            self.feed.publish()
        self._retire(readers)

    def prune(self, state: StreamState, client: Any) -> None:
        """Once this job has a completed checkpoint, drop older jobs' checkpoints and savepoints
        in its ``state`` folder.

        A restored job's first checkpoint is a full one (Flink's default NO_CLAIM restore), so
        nothing of this job refers to the older files.
        """
        own = state.checkpoints / str(client.get_job_id())
        if not any(own.glob("chk-*/_metadata")):
            return
        for old in [*state.checkpoints.glob("*"), *state.savepoints.glob("*")]:
            if old != own:
                shutil.rmtree(old, ignore_errors=True)

    def _retire(self, readers: list[Path]) -> None:
        """Delete the feed files a run no longer needs (otherwise its feed grows forever).

        Rounds are done once every record fed so far has been read (the sink's counts equal
        the feed's) and two checkpoints of each job reading the feed (``readers``: their
        checkpoint folders) completed since: the second was taken after that moment, so a
        restore starts past them.
        """
        rounds = self.feed.rounds()
        if not rounds:
            return
        if self._caught_up is None:
            report = progress_mod.read(self.state.progress)
            caught_up = all(
                report["topics"].get(t, {}).get("records", 0)
                >= sum(r.lines.get(t, 0) for r in rounds)
                for t in self.feed.topics
            )  # fmt: skip
            if caught_up:
                self._caught_up = (time.time(), rounds[-1].number)
            return
        since, last = self._caught_up
        if all(sum(1 for p in own.glob("chk-*/_metadata") if p.stat().st_mtime > since) >= 2
               for own in readers):  # fmt: skip
            self.feed.retire(last)
            self._caught_up = None

    def _pace(self, first: bool = False) -> Any:
        """Feed what the pacer allows now (at least one record the first time)."""
        assert self.pacer is not None
        limit = 1 if first else self.pacer.allowance()
        if limit <= 0 or self._fed_all:
            return None
        fed = self.feed.publish(limit=limit)
        if fed is None:
            self._fed_all = True
            return None
        self.pacer.took(sum(fed.lines.values()))
        return fed

    def _pace_or_drain(self, client: Any) -> None:
        """A paced or aligned replay's tick: feed more, or once all is fed and read, drain."""
        if not self._draining and self.feed_round():
            self._draining = True
            self.echo("all fed and read: draining")
            job_client.drain_in_background(client, self.state.savepoints.absolute().as_uri())

    def feed_round(self) -> bool:
        """Feed what a paced or aligned replay allows now; whether all is fed and read (the
        pipeline's progress counts every record fed), so that the job can be drained.

        The pace starts once the job has read its first record (the first round holds one):
        Flink takes 10-30 s to start, and a pace counted from before would burst.
        """
        read = progress_mod.read(self.state.progress)["topics"]
        if self.aligner is not None:
            self.aligner.step()
            self._fed_all = self.aligner.done
        else:
            assert self.pacer is not None
            if self.pacer.started is None:
                # (a resumed job reports nothing until it reads something new: pace at once)
                if not self._resumed and not any(t.get("records", 0) for t in read.values()):
                    return False
                self.pacer.allowance()  # starts its clock
            self._pace()
        if not self._fed_all:
            return False
        fed = {t: sum(r.lines.get(t, 0) for r in self.feed.rounds()) for t in self.feed.topics}
        return all(read.get(t, {}).get("records", 0) >= n for t, n in fed.items())

    def report(self) -> dict[str, Any]:
        late = self.feed.late() if self.state.feed.exists() else {}
        return progress_mod.read(self.state.progress, late)

    def republish(self, saved: SavedPlan) -> None:
        pieces = current_pieces(self.home, self.settings.window_ms)
        longest = max((_days(s, e) for (_, _, s), e in period_ends(pieces).items()), default=1)
        if longest > saved.max_days:
            raise StreamError(
                f"a period now spans {longest} days, more than this run was started with "
                f"({saved.max_days}): restart it with --fresh"
            )
        version = self.snapshots.publish(pieces)
        if version is not None:
            self.echo(f"published periods version {version}")

    def _shutdown(self, client: Any) -> str:
        """Stop a run with a savepoint (the next run resumes from it); cancel if that fails."""
        self.echo("stopping: taking a savepoint")
        try:
            path = job_client.stop_with_savepoint(client, self.state.savepoints.absolute().as_uri())
            self.echo(f"stopped; savepoint {path}")
            return "STOPPED"
        except Exception as exc:  # the job may be failing already: cancel, checkpoints remain
            log.warning("stream.savepoint_failed", error=str(exc).splitlines()[0])
            client.cancel().result()
            return "CANCELED"


def _job_entries(started: dict[str, tuple[Any, Path | None]]) -> dict[str, dict[str, Any]]:
    """Each started job's id and the snapshot it resumed from, by name."""
    return {name: {"job_id": str(client.get_job_id()),
                   "resumed_from": str(snapshot) if snapshot else None}
            for name, (client, snapshot) in started.items()}  # fmt: skip


def _days(start: int, end: int) -> int:
    return (end - 1) // DAY_MS - start // DAY_MS + 1
