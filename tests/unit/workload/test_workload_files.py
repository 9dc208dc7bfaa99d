"""The generated files against the contract, checked independently of the generator's code.

Every line is parsed with :mod:`json` and classified by the contract's rules (the contract §1)
written out again here; the counts must equal the manifest's exactly.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from udf.workload import WorkloadParams, generate

HOUR = 3_600_000
DAY = 24 * HOUR
PARAMS = WorkloadParams(
    events=40_000,
    users=1_500,
    experiments=6,
    days=6,
    seed=7,
    event_types=7,
    spammers=2,
    spam_cap=100,
    corrupt_share=0.02,
    duplicate_share=0.02,
    late_share=0.05,
    segment_share=0.5,
)
REQUIRED = {
    "events": {"user_id": int, "event_type": str, "ts": int},
    "activations": {"user_id": int, "experiment": str, "group": str, "ts": int},
}


def classify(topic: str, line: str) -> tuple[str, Any]:
    """``("valid", record)`` or ``(kind, None)`` with kind as the generator names it."""
    try:
        obj = json.loads(line)
    except ValueError:
        return "truncated", None
    if not isinstance(obj, dict):
        return "not_object", None
    for field in REQUIRED[topic]:
        if field not in obj:
            return "missing_field", None
    for field, kind in REQUIRED[topic].items():
        value = obj[field]
        if isinstance(value, bool) or not isinstance(value, kind):
            return "wrong_type", None
    for field, value in obj.items():
        if field in REQUIRED[topic]:
            continue
        if field == "value" and (isinstance(value, bool) or not isinstance(value, int | float)):
            return "wrong_type", None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            return "wrong_type", None
    return "valid", obj


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("workload") / "out"
    manifest = generate(PARAMS, out)
    return out, manifest


@pytest.fixture(scope="module")
def parsed(workload) -> dict[str, dict[str, Any]]:
    """Per topic: records as (file day, record, raw line) and independent counts."""
    out, _ = workload
    result: dict[str, dict[str, Any]] = {}
    for topic in ("events", "activations"):
        files: dict[str, Counter] = {}
        kinds: Counter = Counter()
        records: list[tuple[int, dict, str]] = []
        for path in sorted((out / topic).iterdir()):
            day_label = path.name.removeprefix(f"{topic}-").removesuffix(".jsonl")
            day = (dt.date.fromisoformat(day_label) - dt.date(1970, 1, 1)).days
            raw = path.read_bytes()
            assert raw.endswith(b"\n") and b"\r" not in raw
            counts: Counter = Counter()
            for line in raw.decode("utf-8").split("\n")[:-1]:
                assert line.strip(), f"blank line in {path.name}"
                kind, rec = classify(topic, line)
                counts["lines"] += 1
                if kind == "valid":
                    counts["valid"] += 1
                    records.append((day, rec, line))
                else:
                    counts["corrupt"] += 1
                    kinds[kind] += 1
            files[f"{topic}/{path.name}"] = counts
        result[topic] = {"files": files, "kinds": kinds, "records": records}
    return result


def test_manifest_counts_equal_an_independent_count(workload, parsed):
    _, manifest = workload
    for topic in ("events", "activations"):
        stats, mine = manifest["topics"][topic], parsed[topic]
        assert set(stats["files"]) == set(mine["files"])
        for name, counts in mine["files"].items():
            assert stats["files"][name] == {
                "lines": counts["lines"],
                "valid": counts["valid"],
                "corrupt": counts["corrupt"],
            }
        assert stats["valid"] == len(mine["records"])
        assert stats["corrupt_by_kind"] == {k: mine["kinds"][k] for k in stats["corrupt_by_kind"]}
        assert stats["corrupt"] == sum(mine["kinds"].values()) > 0
        assert stats["lines"] == stats["valid"] + stats["corrupt"]
        assert all(mine["kinds"][k] > 0 for k in stats["corrupt_by_kind"])
        # corrupt lines are added: their number is the share of the valid records, rounded down
        assert stats["corrupt"] == int(PARAMS.corrupt_share * stats["valid"])
        copies = Counter(line for _, _, line in mine["records"])
        assert stats["duplicate_copies"] == sum(c - 1 for c in copies.values()) > 0
        cross = sum(1 for day, rec, _ in mine["records"] if rec["ts"] // DAY < day)
        assert stats["cross_day"] == cross > 0
        assert all(rec["ts"] // DAY <= day for day, rec, _ in mine["records"])
    assert manifest["topics"]["events"]["valid"] == PARAMS.events


def test_duplicates_late_and_out_of_order(workload, parsed):
    _, manifest = workload
    events = parsed["events"]["records"]
    assert manifest["topics"]["events"]["late"] > 0
    # late data: records delivered in a file for a day after their event day
    assert any(rec["ts"] // DAY < day for day, rec, _ in events)
    # the only duplicate keys are exact copies of a whole line
    by_key: dict[tuple, set[str]] = defaultdict(set)
    for _, rec, line in events:
        by_key[(rec["user_id"], rec["event_type"], rec["ts"])].add(line)
    assert all(len(lines) == 1 for lines in by_key.values())
    # out of order: event time goes backwards somewhere inside a file
    ts = [rec["ts"] for _, rec, _ in events]
    assert any(b < a for a, b in itertools.pairwise(ts))
    # some copies are delivered far (over a minute of arrival) from their original
    positions: dict[str, list[int]] = defaultdict(list)
    for i, (_, _, line) in enumerate(events):
        positions[line].append(i)
    gaps = [p[-1] - p[0] for p in positions.values() if len(p) > 1]
    assert max(gaps) > 100


def test_spammers_exceed_the_cap_in_some_clock_hour(workload, parsed):
    _, manifest = workload
    unique = {(r["user_id"], r["event_type"], r["ts"]) for _, r, _ in parsed["events"]["records"]}
    per_hour = Counter((user, ts // HOUR) for user, _, ts in unique)
    cap = PARAMS.spam_cap
    over_users = sorted({user for (user, _), c in per_hour.items() if c > cap})
    spam = manifest["spam"]
    assert len(spam["spammer_user_ids"]) == PARAMS.spammers
    assert set(spam["spammer_user_ids"]) <= set(over_users)
    assert spam["users_over_cap"] == over_users
    assert spam["events_over_cap"] == sum(c - cap for c in per_hour.values() if c > cap)
    for burst in spam["bursts"]:
        count = per_hour[(burst["user_id"], burst["hour_start"] // HOUR)]
        assert count >= burst["events"] > 1.5 * cap


def test_event_fields_values_and_segments(workload, parsed):
    _, manifest = workload
    events = [rec for _, rec, _ in parsed["events"]["records"]]
    names = [t["name"] for t in manifest["event_types"]]
    assert names == ["impression", "click", "search", "save", "share", "latency", "event_07"]
    with_value = {t["name"] for t in manifest["event_types"] if t["has_value"]}
    assert with_value == {"latency"}
    assert {r["event_type"] for r in events} == set(names)
    for rec in events:
        assert ("value" in rec) == (rec["event_type"] in with_value)
        if "value" in rec:
            assert isinstance(rec["value"], float) and rec["value"] > 0
            assert round(rec["value"], 3) == rec["value"]
        assert ("country" in rec) == ("platform" in rec)
        assert set(rec) <= {"user_id", "event_type", "ts", "value", "country", "platform"}
    segmented = [r for r in events if "country" in r]
    assert 0.4 < len(segmented) / len(events) < 0.6
    assert manifest["topics"]["events"]["with_segments"] == len(segmented)
    assert manifest["topics"]["events"]["with_value"] == sum("value" in r for r in events)
    per_user = defaultdict(set)
    for rec in segmented:
        per_user[rec["user_id"]].add((rec["country"], rec["platform"]))
    assert all(len(v) == 1 for v in per_user.values())
    start = PARAMS.start_ms
    assert all(start <= r["ts"] < start + PARAMS.days * DAY for r in events)


def test_ramps_cover_the_three_scenarios(workload):
    out, manifest = workload
    with open(out / "ramps.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["experiment", "group", "ramp_ts", "allocation"]
    ramps: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        ramps[row["experiment"]][row["group"]].append(
            (int(row["ramp_ts"]), float(row["allocation"]))
        )
    scenarios = {e["experiment"]: e["scenario"] for e in manifest["experiments"]}
    assert Counter(scenarios.values()) == {"single": 2, "reramp_in": 2, "reramp_after": 2}
    assert set(ramps) == set(scenarios)
    window = PARAMS.window_days * DAY
    at_boundary = 0
    for name, groups in ramps.items():
        assert "control" in groups and 2 <= len(groups) <= 3
        for history in groups.values():
            times = [t for t, _ in history]
            allocs = [a for _, a in history]
            assert times == sorted(times) and allocs == sorted(set(allocs))
            assert history == groups["control"]
            end = PARAMS.start_ms + PARAMS.days * DAY
            assert all(PARAMS.start_ms <= t < end for t in times)
        times = [t for t, _ in groups["control"]]
        scenario = scenarios[name]
        if scenario == "single":
            assert len(times) == 1
        elif scenario == "reramp_in":
            assert len(times) == 2 and times[1] - times[0] < window
        else:
            assert len(times) == 2 and times[1] - times[0] >= window
            at_boundary += times[1] - times[0] == window
        periods = next(e["periods"] for e in manifest["experiments"] if e["experiment"] == name)
        assert len(periods) == (2 if scenario == "reramp_after" else 1)
    assert at_boundary == 1


def test_activations_follow_the_ramps(workload, parsed):
    _, manifest = workload
    acts = [rec for _, rec, _ in parsed["activations"]["records"]]
    experiments = {e["experiment"]: e for e in manifest["experiments"]}
    triggers = Counter((a["user_id"], a["experiment"]) for a in acts)
    assert max(triggers.values()) >= 10  # users are triggered many times
    before = between = after = 0
    for act in acts:
        exp = experiments[act["experiment"]]
        assert act["group"] in exp["groups"]
        periods = exp["periods"]
        if act["ts"] < periods[0]["start"]:
            before += 1
        elif act["ts"] >= periods[-1]["end"]:
            after += 1
        elif not any(p["start"] <= act["ts"] < p["end"] for p in periods):
            between += 1
    assert before > 0 and between > 0 and after > 0
    # a user's group in an experiment never changes (ramps only add buckets)
    groups = defaultdict(set)
    for act in acts:
        groups[(act["user_id"], act["experiment"])].add(act["group"])
    assert all(len(g) == 1 for g in groups.values())
    # each treatment ramps like control: group sizes are of the same order
    by_group = manifest["topics"]["activations"]["by_experiment_group"]
    assert set(by_group) == set(experiments)
    assert sum(sum(v.values()) for v in by_group.values()) == len(acts)
