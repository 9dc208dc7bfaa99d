"""Issue 12's acceptance: ``udf stream replay`` writes exactly the batch's aggregated rows.

For every (experiment, group, metric, period, date, segment) of the workload's dates: the
same keys, equal counts, sums to 1e-9, equal status and comparison columns (lifts,
intervals, p-values, corrected p-values), for default metrics (one per event type) and the
catalog's count, sum and ratio metrics with segments and corrections.
"""

from __future__ import annotations

import pytest

from tests.support.streaming import (
    SPAM_CAP,
    Prepared,
    Replayed,
    assert_stream_equals_batch,
    progress,
)

pytestmark = [pytest.mark.flink, pytest.mark.spark, pytest.mark.slow]


def test_the_workload_has_every_edge_case(prepared: Prepared) -> None:
    m = prepared.manifest
    events, activations = m["topics"]["events"], m["topics"]["activations"]
    assert events["duplicate_copies"] > 0 and activations["duplicate_copies"] > 0
    assert events["corrupt"] > 0 and activations["corrupt"] > 0
    assert events["late"] > 0 and events["with_segments"] > 0
    assert m["spam"]["cap"] == SPAM_CAP and m["spam"]["events_over_cap"] > 0
    assert {e["scenario"] for e in m["experiments"]} == {"single", "reramp_in", "reramp_after"}
    assert any(len(e["periods"]) > 1 for e in m["experiments"])  # a period after a re-ramp


def test_replay_rows_equal_batch(prepared: Prepared, replayed: Replayed) -> None:
    home, out = replayed.home, replayed.output

    stream = assert_stream_equals_batch(home, prepared.dates)
    rows = list(stream.values())
    assert {r.source for r in rows} == {"stream"}
    metrics = {r.metric for r in rows}
    assert {"clicks_by_country", "latency_total", "ctr", "latency_per_impression"} <= metrics
    assert {"click", "impression", "search"} <= metrics  # default metrics
    assert "search_kinds" not in metrics  # custom SQL metrics are batch-only
    assert {r.segment for r in rows} == {"", "country", "platform"}
    assert any(r.p_value is not None for r in rows)

    # every archived line was read once; the archive holds no corrupt line (the importer
    # dead-lettered them) and a single round has nothing late
    report = progress(home, "replay")
    for topic in ("events", "activations"):
        lines = sum(p.read_bytes().count(b"\n") for p in (home.archive / topic).rglob("*.jsonl"))
        assert report["topics"][topic]["records"] == lines
        assert report["topics"][topic]["corrupt"] == 0
    assert "rows written" in out and "read (0 corrupt" in out

    # the 15-minute series: cumulative, never decreasing within a period
    from streaming.series import SeriesStore
    from udf.settings import load_settings

    store = SeriesStore(load_settings(home, {}).results_url(home))
    points = store.read()
    store.close()
    assert points
    last: dict[tuple, tuple] = {}
    for p in points:  # ordered by experiment, group, period, event type, bucket
        key = (p["experiment"], p["group"], p["period_start"], p["event_type"])
        now = (p["exposed"], p["volume"], p["propensity"])
        assert all(a >= b for a, b in zip(now, last.get(key, (0, 0, 0)), strict=True))
        last[key] = now

    # a finished replay leaves no feed or checkpoints behind
    state = home.root / "stream" / "replay"
    assert not (state / "feed").exists() and not (state / "checkpoints").exists()
