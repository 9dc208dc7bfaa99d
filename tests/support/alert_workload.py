"""A small workload for alerts from the stream: a 20% drop, an A/A, and a broken split.

Each experiment has ``users`` users per group, all exposed on one day (2026-01-01, a 50/50
ramp at midnight): a user's activation falls at a uniform time of the day and its clicks
(Poisson, mean :data:`CLICKS`, times 0.8 for the treatment of :data:`DROP`) after it, the
same day. The numbers are drawn with numpy from a fixed seed, independently of the
platform's own generator, so that the effect is known exactly: ``DROP``'s treatment has
20% fewer clicks per user in expectation, ``AA``'s groups have the same distribution.
:data:`SRM` is an A/A whose assignment is broken: 40% of its users in control and 60% in
treatment (``users`` per group on average), against the 50/50 its ramps configure.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

DROP = "exp_drop"
AA = "exp_aa"
SRM = "exp_srm"
SPLITS = {DROP: (1.0, 1.0), AA: (1.0, 1.0), SRM: (0.8, 1.2)}  # users per group, x ``users``
OWNER = "owner@example.com"
CLICKS = 3.0
START_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000


def write_workload(out: Path, users: int = 1500, seed: int = 5) -> dict[str, int]:
    """``events.jsonl``, ``activations.jsonl``, ``ramps.csv`` under ``out``; the record counts."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    events: list[tuple[int, str]] = []
    activations: list[tuple[int, str]] = []
    uid = 1_000
    for experiment, effect in ((DROP, -0.2), (AA, 0.0), (SRM, 0.0)):
        for group, share in zip(("control", "treatment"), SPLITS[experiment], strict=True):
            mean = CLICKS * (1 + effect) if group == "treatment" else CLICKS
            n = round(users * share)
            at = START_MS + rng.integers(0, DAY_MS - 60_000, n)
            clicks = rng.poisson(mean, n)
            for t, k in zip(at.tolist(), clicks.tolist(), strict=True):
                uid += 1
                record = {"user_id": uid, "experiment": experiment, "group": group, "ts": t}
                activations.append((t, json.dumps(record)))
                end = START_MS + DAY_MS
                for ts in sorted(rng.integers(t, end, k).tolist()):
                    events.append(
                        (ts, json.dumps({"user_id": uid, "event_type": "click", "ts": ts}))
                    )
    for name, records in (("events", events), ("activations", activations)):
        records.sort()
        (out / f"{name}.jsonl").write_text("".join(line + "\n" for _, line in records))
    ramps = ["experiment,group,ramp_ts,allocation"]
    ramps += [f"{e},{g},{START_MS},50" for e in SPLITS for g in ("control", "treatment")]
    (out / "ramps.csv").write_text("\n".join(ramps) + "\n")
    return {"events": len(events), "activations": len(activations)}


def catalog() -> dict:
    """``clicks``, owned by :data:`OWNER`, watched for a decrease in every experiment."""
    return {
        "metrics": [
            {
                "name": "clicks",
                "type": "aggregated",
                "event_type": "click",
                "owners": [OWNER],
                "alert": {"direction": "decrease"},
            }
        ],
        "experiments": [
            {"experiment": DROP, "metrics": ["clicks"]},
            {"experiment": AA, "metrics": ["clicks"]},
            {"experiment": SRM, "metrics": ["clicks"]},
        ],
    }
