"""Issue 12's acceptance: SIGKILL mid-replay, rerun: it resumes and nothing is double-counted.

The replay runs in its own process group (the command and the JVM it starts), paced. Once
a checkpoint has completed, the group is killed with SIGKILL; the rerun must resume from the
latest retained checkpoint and end with rows equal to batch. The results sink replaces
whole (experiment, date) slices, so rows written between the checkpoint and the kill are
rewritten, not added to.

Before that rerun, the state folder is made to look like another version's: a plan file that
does not load, then a plan whose recorded state layout is not this job's. Both are refused
with a word to start again with --fresh, and leave the checkpoint for the real rerun.
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from streaming.runner import SavedPlan
from tests.support.streaming import (
    Prepared,
    assert_series_agrees_with_rows,
    assert_stream_equals_batch,
    finish,
    kill_group,
    output_of,
    rows_of,
    start_stream,
    wait_for,
)

pytestmark = [pytest.mark.flink, pytest.mark.spark, pytest.mark.slow]


def test_sigkill_mid_replay_then_rerun_resumes_and_equals_batch(prepared: Prepared) -> None:
    home = prepared.home("kill")
    state = home.root / "stream" / "replay"
    # Paced, so that it is still reading when it is killed: unpaced, this small workload's
    # replay can end (and its checkpoints be cleaned up) between the check and the kill.
    first = start_stream(home, "replay", "--rate", "1000")
    wait_for(
        lambda: any(state.glob("checkpoints/*/chk-*/_metadata")) and rows_of(home, "stream"),
        900, "a completed checkpoint and the first stream rows", first,
    )  # fmt: skip
    assert first.poll() is None, "the replay was still running when killed"
    kill_group(first)
    assert first.returncode == -9

    plan_file = state / "plan.pickle"
    saved = plan_file.read_bytes()
    recorded = pickle.loads(saved)
    assert isinstance(recorded, SavedPlan) and recorded.layout  # the job's, at its start
    for tampered, why in (
        (b"a plan of another version", "its plan was saved by another version"),
        (pickle.dumps(replace(recorded, layout="0" * 16)), "its job's operators or state differ"),
    ):
        plan_file.write_bytes(tampered)
        refused = start_stream(home, "replay")
        assert refused.wait(timeout=600) != 0
        out = output_of(home, "replay")
        assert why in out and "start again with --fresh" in out
        assert any(state.glob("checkpoints/*/chk-*/_metadata"))  # still there to resume from
    plan_file.write_bytes(saved)

    out = finish(start_stream(home, "replay"), home, "replay", timeout=1200)
    assert "resuming from chk-" in out and "with the rate it was started with: 1000" in out
    stream = assert_stream_equals_batch(home, prepared.dates)
    assert_series_agrees_with_rows(home, list(stream.values()))  # its state restored too
