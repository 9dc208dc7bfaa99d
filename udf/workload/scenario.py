"""Experiments, their groups and ramp schedules (the three validation scenarios).

Scenarios are spread evenly over experiments in the order ``single``, ``reramp_in``,
``reramp_after``:

- ``single``: one ramp (the launch) at ``r1``.
- ``reramp_in``: a second, larger ramp at ``r1 + min(1 day, W / 2)``, inside the first
  aggregation period, which extends that period to ``r2 + W``.
- ``reramp_after``: a second ramp at or after ``r1 + W`` (the first such experiment exactly at
  ``r1 + W``, the boundary; the others 1-24 h later), which opens a new period.

All groups of an experiment ramp together to the same allocation (the ``skew`` drill breaks
that on purpose for the first experiment, ``cross_group_share`` for the first of each
scenario). User ``u`` is in group
``g`` at time ``t`` when its bucket ``b(u, e)`` lies in ``[offset_g, offset_g + alloc(t))``:
with one treatment the offsets are control 0, treatment 50; with two they are 0, 33, 66.
Triggers start :data:`PRELAUNCH_MS` before the launch (stale configs, QA), so some activations
fall before the first period and never count.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from udf.workload.hashing import buckets, experiment_salt, splitmix64
from udf.workload.params import DAY_MS, HOUR_MS, WorkloadParams

SCENARIOS = ("single", "reramp_in", "reramp_after")
PRELAUNCH_MS = 3 * HOUR_MS
_NO_RAMP = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Ramp:
    ts: int
    allocation: int


@dataclass(frozen=True)
class Experiment:
    name: str
    scenario: str
    groups: tuple[str, ...]
    offsets: tuple[int, ...]
    ramps: tuple[Ramp, ...]
    salt: int = field(repr=False)

    def periods(self, window_ms: int) -> list[tuple[int, int]]:
        """Aggregation periods ``(start, end)`` by the contract §3 (same for every group).

        Written independently of :func:`metadata.periods.aggregation_periods` on purpose:
        the manifest is the tests' oracle, and two derivations that agree are the check.
        """
        out: list[tuple[int, int]] = []
        for ramp in sorted(self.ramps, key=lambda r: r.ts):
            if out and ramp.ts < out[-1][1]:
                out[-1] = (out[-1][0], ramp.ts + window_ms)
            else:
                out.append((ramp.ts, ramp.ts + window_ms))
        return out

    def to_manifest(self, window_ms: int) -> dict:
        return {
            "experiment": self.name,
            "scenario": self.scenario,
            "groups": list(self.groups),
            "bucket_offsets": dict(zip(self.groups, self.offsets, strict=True)),
            "ramps": [{"ramp_ts": r.ts, "allocation": r.allocation} for r in self.ramps],
            "periods": [{"start": s, "end": e} for s, e in self.periods(window_ms)],
        }


def experiment_name(seed: int, index: int) -> str:
    """A stable hash-like experiment id, e.g. ``exp_3f9a2c1b``."""
    return f"exp_{experiment_salt(f'{seed}:{index}') >> 32:08x}"


def build_experiments(params: WorkloadParams, rng: np.random.Generator) -> list[Experiment]:
    """The experiments of a workload; launches fall so every second ramp lies in the data."""
    start, w = params.start_ms, params.window_ms
    latest_launch = start + (params.days - params.window_days - 2) * DAY_MS + 18 * HOUR_MS
    experiments: list[Experiment] = []
    after_seen = 0
    for i in range(params.experiments):
        scenario = SCENARIOS[i % 3]
        treatments = 1 + (i // 3) % 2
        groups: tuple[str, ...]
        offsets: tuple[int, ...]
        if treatments == 1:
            groups, offsets, cap = ("control", "treatment"), (0, 50), 50
        else:
            groups, offsets, cap = ("control", "treatment_a", "treatment_b"), (0, 33, 66), 33
        minutes = int(rng.integers(6 * 60, (latest_launch - start) // 60_000 + 1))
        r1 = start + minutes * 60_000
        a1 = int(rng.choice([5, 10, 15, 20]))
        ramps = [Ramp(r1, a1)]
        a2 = min(cap, a1 + int(rng.choice([5, 10, 15])))
        if scenario == "reramp_in":
            ramps.append(Ramp(r1 + min(DAY_MS, w // 2), a2))
        elif scenario == "reramp_after":
            extra = 0 if after_seen == 0 else int(rng.integers(1, 25)) * HOUR_MS
            after_seen += 1
            ramps.append(Ramp(r1 + w + extra, a2))
        name = experiment_name(params.seed, i)
        experiments.append(
            Experiment(name, scenario, groups, offsets, tuple(ramps), experiment_salt(name))
        )
    return experiments


def ramps_csv(experiments: list[Experiment]) -> str:
    """The ramp history as CSV (the contract §2), control first, in ramp order."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["experiment", "group", "ramp_ts", "allocation"])
    for exp in experiments:
        for ramp in exp.ramps:
            for group in exp.groups:
                writer.writerow([exp.name, group, ramp.ts, ramp.allocation])
    return buf.getvalue()


class Assigner:
    """Vectorized 'which group is user u in for experiment e at time t' over all experiments."""

    def __init__(self, experiments: list[Experiment], skew: float = 0.0):
        self.experiments = experiments
        self.skew = skew
        n = len(experiments)
        self.salts = np.array([e.salt for e in experiments], dtype=np.uint64)
        self.trigger_from = np.array([e.ramps[0].ts - PRELAUNCH_MS for e in experiments])
        self.a1 = np.array([e.ramps[0].allocation for e in experiments], dtype=np.int16)
        self.r2 = np.array(
            [e.ramps[1].ts if len(e.ramps) > 1 else _NO_RAMP for e in experiments], dtype=np.int64
        )
        self.a2 = np.array([e.ramps[-1].allocation for e in experiments], dtype=np.int16)
        self.offsets = np.full((n, 3), 1000, dtype=np.int16)
        for i, exp in enumerate(experiments):
            self.offsets[i, : len(exp.offsets)] = exp.offsets

    def groups(self, uids: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """An ``(m, e)`` int8 array: the group index of each user in each experiment, or -1."""
        t = np.asarray(ts)[:, None]
        alloc = np.where(
            t >= self.r2[None, :],
            self.a2[None, :],
            np.where(t >= self.trigger_from[None, :], self.a1[None, :], 0),
        ).astype(np.int16)
        rel = buckets(uids, self.salts)[:, :, None] - self.offsets[None, :, :]
        inside = (rel >= 0) & (rel < alloc[:, :, None])
        out = np.where(inside.any(axis=2), inside.argmax(axis=2), -1).astype(np.int8)
        if self.skew > 0 and len(self.experiments):  # the first experiment's SRM drill
            u = (
                splitmix64(np.asarray(uids).astype(np.uint64) ^ np.uint64(0x5E5E)) >> np.uint64(11)
            ).astype(float)
            moved = (out[:, 0] == 0) & (u / float(1 << 53) < self.skew)
            out[moved, 0] = 1
        return out
