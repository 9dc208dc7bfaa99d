"""Issue 12's acceptance: ``udf stream replay`` writes exactly the batch's aggregated rows.

For every (experiment, group, metric, period, date, segment) of the workload's dates: the
same keys, equal counts, sums to 1e-9, equal status, comparison columns (lifts, intervals,
p-values, corrected p-values) and health checks (SRM, users in two groups, with and without
their exclusion), for default metrics (one per event type) and the catalog's count, sum and
ratio metrics with segments and corrections.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from results.schema import ResultRow
from tests.support.streaming import (
    SPAM_CAP,
    Prepared,
    Replayed,
    assert_series_agrees_with_rows,
    assert_stream_equals_batch,
    catalog_yaml,
    progress,
    rows_of,
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
    # users in two groups: counted in both kinds of experiment, left out where it says so
    analysis = {e["experiment"]: e.get("analysis", {})
                for e in catalog_yaml(prepared.manifest)["experiments"]}  # fmt: skip
    counted = {r.experiment for r in rows if r.multiple_groups > 0}
    assert any(analysis.get(e, {}).get("multiple_groups") == "exclude" for e in counted)
    assert any(analysis.get(e, {}).get("multiple_groups") != "exclude" for e in counted)
    # the health checks: SRM against uneven ramps (tests.support.streaming.uneven_ramps)
    assert all(r.srm_p_value is not None for r in rows)
    assert {"srm", "multiple_groups"} <= {flag for r in rows for flag in r.health.split(",")}
    # CUPED: the covariate's sums of count and sum metrics, and the adjusted comparisons
    cuped = [r for r in rows if r.pre_sum is not None]
    assert {r.experiment for r in cuped} == {e for e, a in analysis.items() if "cuped" in a}
    assert {"clicks_by_country", "latency_total", "click"} <= {r.metric for r in cuped}
    assert any(r.pre_sum > 0 and r.pre_sum_xy > 0 for r in cuped)
    assert any(r.cuped_p_value is not None and r.variance_reduction for r in cuped)

    assert_sequential_columns(stream, rows_of(home, "batch"), _alphas(prepared.manifest))

    # every archived line was read once; the archive holds no corrupt line (the importer
    # dead-lettered them) and a single round has nothing late
    report = progress(home, "replay")
    for topic in ("events", "activations"):
        lines = sum(p.read_bytes().count(b"\n") for p in (home.archive / topic).rglob("*.jsonl"))
        assert report["topics"][topic]["records"] == lines
        assert report["topics"][topic]["corrupt"] == 0
    assert "rows written" in out and "read (0 corrupt" in out

    assert_series_agrees_with_rows(home, rows)

    # a finished replay leaves no feed or checkpoints behind
    state = home.root / "stream" / "replay"
    assert not (state / "feed").exists() and not (state / "checkpoints").exists()


def _alphas(manifest: dict) -> dict[str, float]:
    """Each experiment's alpha, from the catalog the test loaded (0.05 unless it sets one)."""
    return {
        e["experiment"]: e.get("analysis", {}).get("alpha", 0.05)
        for e in catalog_yaml(manifest)["experiments"]
    }


def _stats(row: ResultRow | None, ratio: bool):
    from stats.sufficient import RatioStats, SampleStats

    if ratio:
        if row is None:
            return RatioStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return RatioStats(float(row.n), row.sum, row.sum_sq, row.den_sum, row.den_sum_sq,
                          row.sum_xy)  # fmt: skip
    return (
        SampleStats(0.0, 0.0, 0.0)
        if row is None
        else SampleStats(float(row.n), row.sum, row.sum_sq)
    )


def _first(value) -> float:
    return float(np.asarray(value, dtype=float).reshape(-1)[0])


def assert_sequential_columns(
    stream: dict[tuple, ResultRow], batch: dict[tuple, ResultRow], alphas: dict[str, float]
) -> None:
    """Stream rows carry the mSPRT's columns, computed here from each pair's own statistics.

    No experiment of the workload names a sequential method, so the stream uses the
    real-time default (the always-valid mSPRT, at the experiment's alpha) while batch rows
    carry none (docs/streaming.md, "Sequential columns").
    """
    from stats.sequential.msprt import msprt

    cells: dict[tuple, dict[str, ResultRow]] = {}
    for row in stream.values():
        cell = (row.experiment, row.period_start, row.date, row.segment, row.segment_value,
                row.metric)  # fmt: skip
        cells.setdefault(cell, {})[row.group] = row
    checked = decided = 0
    for cell, groups in cells.items():
        control = groups.get("control")
        assert control is None or (control.seq_p_value is None and control.seq_decision == "")
        for group, t in groups.items():
            if group == "control":
                continue
            b = batch[t.key()[1:]]
            assert b.seq_p_value is None and b.seq_decision == "" and b.seq_ci_low is None
            ratio = t.den_sum is not None
            result = msprt(
                _stats(control, ratio), _stats(t, ratio), alpha=alphas.get(t.experiment, 0.05)
            )
            cmp = result.comparison
            expected = {
                "seq_ci_low": _first(cmp.ci_low), "seq_ci_high": _first(cmp.ci_high),
                "seq_rel_ci_low": _first(cmp.rel_ci_low), "seq_rel_ci_high": _first(cmp.rel_ci_high),
                "seq_p_value": _first(cmp.p_value) if t.p_value is not None else float("nan"),
            }  # fmt: skip
            for name, want in expected.items():
                got = getattr(t, name)
                if not math.isfinite(want):
                    assert got is None, (cell, group, name, got)
                else:
                    assert got is not None, (cell, group, name, want)
                    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), (
                        cell,
                        group,
                        name,
                        got,
                        want,
                    )
            if t.seq_p_value is not None:
                assert t.seq_alpha == alphas.get(t.experiment, 0.05)
            if bool(np.asarray(result.reject).reshape(-1)[0]):
                lower = _first(cmp.lift_abs) < 0
                assert t.seq_decision == ("treatment_lower" if lower else "treatment_higher")
                decided += 1
            else:
                assert t.seq_decision == "continue", (cell, group, t.seq_decision)
            checked += 1
    assert checked > 100
