"""The supervisor's decisions on the jobs apart, against a fake session cluster (the real
cluster's runs are in tests/integration/streaming/test_cluster_ops.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from udf.home import Home


class FakeCluster:
    """Jobs by id with their states; records what was cancelled."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states
        self.cancelled: list[str] = []

    def rest(self, path: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
        job_id = path.split("/")[2].split("?")[0]
        if method == "PATCH" and path.endswith("?mode=cancel"):
            self.cancelled.append(job_id)
            self.states[job_id] = "CANCELED"
            return {}
        return {"state": self.states[job_id]}

    def revive_taskmanager(self) -> None:
        return None


@pytest.fixture
def replay_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Home, FakeCluster, list]:
    """A detached replay apart whose aggregation job failed; ``submit``'s calls recorded."""
    from streaming import supervisor
    from streaming.runner import StreamState

    home = Home.resolve(tmp_path).ensure()
    ids = {"filter_events": "f", "filter_activations": "v", "aggregation": "a"}
    record = {"mode": "replay", "jobs": {name: {"job_id": i} for name, i in ids.items()}}
    job_file = StreamState.of(home, "replay").job_file
    job_file.parent.mkdir(parents=True)
    job_file.write_text(json.dumps(record))
    cluster = FakeCluster({"f": "RUNNING", "v": "FINISHED", "a": "FAILED"})
    monkeypatch.setattr(supervisor.Cluster, "of", lambda home: cluster)
    calls: list[tuple[str, ...] | None] = []

    def submit(home: Home, mode: str, jobs: tuple[str, ...] | None = None) -> dict[str, Any]:
        calls.append(jobs)
        return {"mode": mode, "jobs": {}}

    monkeypatch.setattr(supervisor, "submit", submit)
    return home, cluster, calls


def test_a_job_apart_is_resubmitted_alone_when_the_mode_can_resume(replay_apart) -> None:
    from streaming import supervisor

    home, cluster, calls = replay_apart
    checkpoint = home.root / "stream/replay/jobs/filter_events/checkpoints/f/chk-3"
    checkpoint.mkdir(parents=True)
    (checkpoint / "_metadata").touch()
    outcome = supervisor.recover(home, "replay", "aggregation")
    assert outcome["outcome"] == "resubmitted" and outcome["job"] == "aggregation"
    assert calls == [("aggregation",)] and cluster.cancelled == []  # the others run on
    assert supervisor.deployed(home, "replay")["aggregation"]["recoveries"] == 1


def test_with_nothing_to_resume_from_all_jobs_apart_start_again_together(replay_apart) -> None:
    """No checkpoint of any job yet: a start from the beginning (new topics) for all three,
    the one still running cancelled first (it would write to the old topics)."""
    from streaming import supervisor

    home, cluster, calls = replay_apart
    assert supervisor.recover(home, "replay", "aggregation")["outcome"] == "resubmitted"
    assert calls == [None] and cluster.cancelled == ["f"]


def test_a_job_apart_past_its_attempts_is_unrecoverable(replay_apart) -> None:
    from streaming import supervisor

    home, _, calls = replay_apart
    for _ in range(2):
        supervisor.recover(home, "replay", "aggregation", max_attempts=2)
    outcome = supervisor.recover(home, "replay", "aggregation", max_attempts=2)
    assert outcome["outcome"] == "unrecoverable" and outcome["job"] == "aggregation"
    assert len(calls) == 2


def test_a_record_of_an_earlier_version_is_the_one_pipelines(tmp_path: Path) -> None:
    from streaming import supervisor
    from streaming.runner import StreamState

    home = Home.resolve(tmp_path).ensure()
    job_file = StreamState.of(home, "run").job_file
    job_file.parent.mkdir(parents=True)
    job_file.write_text(json.dumps({"job_id": "j", "mode": "run", "recoveries": 2}))
    assert supervisor.deployed(home, "run") == {
        "pipeline": {"job_id": "j", "mode": "run", "recoveries": 2}
    }
