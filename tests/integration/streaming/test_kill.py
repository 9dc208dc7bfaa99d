"""Issue 12's acceptance: SIGKILL mid-replay, rerun: it resumes and nothing is double-counted.

The replay runs in its own process group (the command and the JVM it starts), paced. Once
a checkpoint has completed, the group is killed with SIGKILL; the rerun must resume from the
latest retained checkpoint and end with rows equal to batch. The results sink replaces
whole (experiment, date) slices, so rows written between the checkpoint and the kill are
rewritten, not added to.
"""

from __future__ import annotations

import pytest

from tests.support.streaming import (
    Prepared,
    assert_series_agrees_with_rows,
    assert_stream_equals_batch,
    finish,
    kill_group,
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

    out = finish(start_stream(home, "replay"), home, "replay", timeout=1200)
    assert "resuming from chk-" in out and "with the rate it was started with: 1000" in out
    stream = assert_stream_equals_batch(home, prepared.dates)
    assert_series_agrees_with_rows(home, list(stream.values()))  # its state restored too
