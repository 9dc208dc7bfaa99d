"""A job that cannot start says why in one line; a checkpoint of an earlier version, whose
state has no operator in this one, says to start again with --fresh."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from streaming.job_client import not_started

# What PyFlink raised when `udf stream replay` resumed from a checkpoint of a version whose
# series sink kept state (a378540) with the one that keeps it in `series-counts`, shortened.
UNMAPPED = """An error occurred while calling o60.executeAsync.
: org.apache.flink.util.FlinkException: Failed to execute job 'udf stream replay'.
Caused by: java.lang.RuntimeException: org.apache.flink.runtime.client.JobInitializationException: Could not start the JobMaster.
Caused by: java.util.concurrent.CompletionException: java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint file:/h/chk-4. Cannot map checkpoint/savepoint state for operator cd7793f22e4963239c96da279b21ca9f to the new program, because the operator is not available in the new program. If you want to allow to skip this, you can set the --allowNonRestoredState option on the CLI.
Caused by: java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint file:/h/chk-4. Cannot map checkpoint/savepoint state for operator cd7793f22e4963239c96da279b21ca9f to the new program, because the operator is not available in the new program. If you want to allow to skip this, you can set the --allowNonRestoredState option on the CLI.
"""


def test_a_checkpoint_of_an_earlier_version_says_to_start_fresh() -> None:
    message = not_started(RuntimeError(UNMAPPED), Path("/h/stream/replay/checkpoints/x/chk-4"))
    assert message.startswith("cannot resume from chk-4 (/h/stream/replay/checkpoints/x/chk-4)")
    assert message.endswith("start again with --fresh")
    assert "\n" not in message


def test_any_other_start_failure_gives_flinks_innermost_cause() -> None:
    error = RuntimeError("Failed to execute job 'udf stream run'.\n"
                         "Caused by: java.io.IOException: outer\n"
                         "Caused by: java.net.ConnectException: Connection refused\n")  # fmt: skip
    assert not_started(error, None) == (
        "the Flink job could not be started: java.net.ConnectException: Connection refused"
    )
    # without a checkpoint to resume from, an unmapped state is reported as it is
    assert "--fresh" not in not_started(RuntimeError(UNMAPPED), None)
    assert not_started(RuntimeError("no cause given"), None).endswith(": no cause given")


class FakeCluster:
    """A session cluster as the refusal sees it: up, with ``free`` task slots."""

    rest_url = "http://localhost:1"

    def __init__(self, free: int, taskmanagers: int = 1) -> None:
        self.free = free
        self.taskmanagers = taskmanagers

    def running(self, role: str) -> bool:
        return True

    def status(self) -> dict[str, int]:
        return {"slots_available": self.free, "taskmanagers": self.taskmanagers}


@pytest.mark.parametrize(("cluster", "refused"), [
    # parallelism 2: three jobs of two slots each
    (FakeCluster(5), "need 6 free task slots .* has 5: raise flink.task_slots"),
    (FakeCluster(0, taskmanagers=0), "has no TaskManager"),
])  # fmt: skip
def test_the_jobs_apart_refuse_a_cluster_that_cannot_run_them(
    tmp_path: Path, cluster, refused
) -> None:
    from streaming.runner import Runner
    from udf.errors import InputError
    from udf.home import Home
    from udf.settings import Settings

    topics = {"bootstrap": "127.0.0.1:1"}
    stream = {"topics": topics, "parallelism": 2}
    settings = Settings.model_validate({"stream": stream})
    runner = Runner(Home.resolve(tmp_path).ensure(), settings, "replay", cluster=cluster,
                    detach=True)  # fmt: skip
    with pytest.raises(InputError, match=refused):
        runner.execute(fresh=True)
    assert not (tmp_path / "stream" / "replay").exists()  # refused before anything changed


@pytest.mark.parametrize("apart", [False, True])
@pytest.mark.parametrize(("rate", "source"), [
    (2000.0, {}), (None, {"alignment": {"max_drift_seconds": 3600}}),
])  # fmt: skip
def test_a_replay_fed_round_by_round_cannot_detach(tmp_path: Path, apart, rate, source) -> None:
    """A paced or aligned replay is fed by the command that runs it: detached, nobody would."""
    from streaming.runner import Runner
    from udf.errors import InputError
    from udf.home import Home
    from udf.settings import Settings

    stream = {"source": source, **({"topics": {"bootstrap": "127.0.0.1:1"}} if apart else {})}
    runner = Runner(Home.resolve(tmp_path).ensure(), Settings.model_validate({"stream": stream}),
                    "replay", rate=rate, cluster=FakeCluster(6), detach=True)  # fmt: skip
    with pytest.raises(InputError, match=r"fed round by round .* cannot --detach"):
        runner.execute(fresh=True)
    assert not (tmp_path / "stream" / "replay").exists()


class EndOfTopics:
    """Topics whose end check answers ``read_all``; records what the replay's end did."""

    def __init__(self, read_all: bool) -> None:
        self.read_all = read_all
        self.deleted = False
        self.settings = SimpleNamespace(bootstrap="broker:9092")

    def read_to_end(self) -> bool:
        return self.read_all

    def delete(self) -> None:
        self.deleted = True


class EndOfReplay:
    finished = False

    def finished_replay(self) -> None:
        self.finished = True


@pytest.mark.parametrize("read_all", [True, False])
def test_a_replay_apart_ends_only_once_every_topic_was_read(read_all: bool) -> None:
    from streaming.apart import finish_replay
    from streaming.runner import StreamError

    runner, topics = EndOfReplay(), EndOfTopics(read_all)
    if read_all:
        finish_replay(runner, topics)
    else:  # a record seen after the drain: the state and topics stay for a fresh replay
        with pytest.raises(StreamError, match=r"before it had read every record.*--fresh"):
            finish_replay(runner, topics)
    assert runner.finished is topics.deleted is read_all


def test_the_saved_plan_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It keeps the settings of the jobs apart's topics, whose Kafka properties may hold
    credentials."""
    from streaming.runner import Runner, SavedPlan
    from udf.home import Home
    from udf.settings import Settings

    topics = {"bootstrap": "127.0.0.1:1", "properties": {"sasl.password": "secret"}}
    settings = Settings.model_validate({"stream": {"topics": topics}})
    runner = Runner(Home.resolve(tmp_path).ensure(), settings, "run")
    runner.state.root.mkdir(parents=True)
    saved = SavedPlan(plan=None, max_days=1, generation="g", topics=settings.stream.topics)  # type: ignore[arg-type]
    runner.check_layout(saved, "layout", None)
    assert runner.state.plan_file.stat().st_mode & 0o777 == 0o600
    assert runner.saved_topics() is not None  # and the runner reads it back
