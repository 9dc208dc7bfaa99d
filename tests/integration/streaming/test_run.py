"""Issue 12's acceptance: ``udf stream run`` follows imports; late activations lose nothing.

The home starts with every event but only the first days' activations; once the running
pipeline has read them, the remaining activations are imported: their users' events were
processed minutes (of processing time; hours and days of event time) before the
activations that expose them arrived. The stream must not undercount: after SIGTERM stops
the run cleanly, its rows equal batch's over the complete archive. A second run resumes
from the savepoint the first one took.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from metadata.repository import MetadataStore
from tests.support.streaming import (
    Prepared,
    assert_stream_equals_batch,
    finish,
    output_of,
    prepare_home,
    progress,
    start_stream,
    udf,
    wait_for,
)
from udf.home import Home

pytestmark = [pytest.mark.flink, pytest.mark.spark, pytest.mark.slow]


def _lines(files: list[Path]) -> int:
    return sum(p.read_bytes().count(b"\n") for p in files)


def _archived(home: Home, topic: str) -> int:
    return _lines(list((home.archive / topic).rglob("*.jsonl")))


def _read(home: Home, topic: str) -> int:
    return progress(home, "run")["topics"].get(topic, {}).get("records", 0)


def _settled(home: Home) -> bool:
    """Nothing new written for a few flush intervals."""
    before = progress(home, "run")["rows_written"]
    time.sleep(4)
    return progress(home, "run")["rows_written"] == before


def test_run_with_late_activations_equals_batch(prepared: Prepared) -> None:
    home = Home.resolve(prepared.root / "run").ensure()
    prepare_home(home, prepared.workload, prepared.manifest, data=False)
    h = ("--home", str(home.root))
    events = sorted(str(p) for p in (prepared.workload / "events").glob("*.jsonl"))
    activations = sorted(str(p) for p in (prepared.workload / "activations").glob("*.jsonl"))
    udf(*h, "data", "import", "--topic", "events", *events)
    udf(*h, "data", "import", "--topic", "activations", *activations[:3])

    run = start_stream(home, "run")
    wait_for(
        lambda: _read(home, "events") == _archived(home, "events")
        and _read(home, "activations") == _archived(home, "activations"),
        900, "the first imports to be read", run,
    )  # fmt: skip
    udf(*h, "data", "import", "--topic", "activations", *activations[3:])
    wait_for(lambda: _read(home, "activations") == _archived(home, "activations"), 600,
             "the late activations to be read", run)  # fmt: skip
    wait_for(lambda: _settled(home), 300, "the results to settle", run)
    # read and checkpointed past: the feed's first round is retired (a run's feed stays small)
    first_round = home.root / "stream" / "run" / "feed" / "events" / "r00000001-0000.jsonl"
    wait_for(lambda: not first_round.exists(), 120, "the first feed round to be retired", run)
    os.kill(run.pid, signal.SIGTERM)
    out = finish(run, home, "run", timeout=300)
    assert "stopped; savepoint" in out

    # the stream registered the event types it saw as default metrics, as batch would have
    with MetadataStore.for_home(home) as store:
        assert {"click", "impression", "search"} <= {m.name for m in store.metrics()}

    # the same records as the prepared home's archive (imported in another order): its batch rows
    template = Home.resolve(prepared.template)
    first = assert_stream_equals_batch(home, prepared.dates, batch_home=template)

    # the next run resumes from the savepoint and changes nothing
    again = start_stream(home, "run")
    wait_for(lambda: "started run (resumed)" in output_of(home, "run"), 600, "the resume", again)
    time.sleep(5)
    os.kill(again.pid, signal.SIGTERM)
    out = finish(again, home, "run", timeout=300)
    assert "resuming from savepoint-" in out
    after = assert_stream_equals_batch(home, prepared.dates, batch_home=template)
    assert after.keys() == first.keys()
