"""The state layout a resume is checked against: the job's operators and how they connect,
and the Java functions' sources; not the parallelism a restore may change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streaming import jvm
from streaming.pipeline import state_layout


class Env:
    """What state_layout reads of a built job: Flink's JSON plan of its stream graph."""

    def __init__(self, nodes: list[dict[str, Any]]):
        self.nodes = nodes

    def get_execution_plan(self) -> str:
        return json.dumps({"nodes": self.nodes})


def _job(parallelism: int = 2, sink: int = 1, group_by: str = "user_id") -> Env:
    """A source, a keyed aggregation and a sink, as Flink's plan lists them."""
    ship = "FORWARD" if sink == parallelism else "REBALANCE"
    return Env([
        {"id": 1, "type": "Source: events", "pact": "Data Source", "contents": "Source: events",
         "parallelism": parallelism},
        {"id": 2, "type": "GroupAggregate[2]", "pact": "Operator",
         "contents": f"[2]:GroupAggregate(groupBy=[{group_by}], select=[COUNT(*)])",
         "parallelism": parallelism,
         "predecessors": [{"id": 1, "ship_strategy": "HASH", "side": "second"}]},
        {"id": 3, "type": "results sink", "pact": "Operator", "contents": "results sink",
         "parallelism": sink, "predecessors": [{"id": 2, "ship_strategy": ship, "side": "second"}]},
    ])  # fmt: skip


def test_a_rescaled_job_has_the_same_layout() -> None:
    assert state_layout(_job(2)) == state_layout(_job(1)) == state_layout(_job(4, sink=4))


def test_the_numbers_the_jvm_counts_on_from_job_to_job_do_not_count() -> None:
    """A second build of the pipeline in one process (a supervisor's) gets other operator
    ids, Calcite correlation variables and anonymous stream names."""
    first, again = _job(), _job()
    for node in again.nodes:
        node["id"] += 100
        for p in node.get("predecessors", []):
            p["id"] += 100
    first.nodes[1]["contents"] += " $cor53.line *anonymous_datastream_source$2*"
    again.nodes[1]["contents"] = again.nodes[1]["contents"].replace("[2]", "[9]")
    again.nodes[1]["type"] = "GroupAggregate[9]"
    again.nodes[1]["contents"] += " $cor159.line *anonymous_datastream_source$8*"
    assert state_layout(again) == state_layout(first)


def test_another_grouping_or_topology_is_another_layout() -> None:
    assert state_layout(_job(group_by="experiment")) != state_layout(_job())
    rewired = _job()
    rewired.nodes[2]["predecessors"] = [{"id": 1, "ship_strategy": "FORWARD", "side": "second"}]
    assert state_layout(rewired) != state_layout(_job())


def test_other_java_functions_are_another_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    before = state_layout(_job())
    monkeypatch.setattr(jvm, "sources_digest", lambda: "0123456789abcdef")
    assert state_layout(_job()) != before
