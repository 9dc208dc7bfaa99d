"""The recently-ramped-groups job: snapshots of the aggregation periods for the Flink jobs.

The seed publishes a CSV of the groups ramped in the last three days every five minutes,
and the activation filter checks it every ten seconds. Here the periods come from the
metadata store's ramps through :func:`metadata.periods.aggregation_periods` (the function
batch uses), and every period is published, not only open ones: a replay of history needs
the old ones, and a re-ramp can re-open a group. A snapshot is written only when the periods
changed, as a new *version* file ``vNNNNNNNN.jsonl`` holding the changed rows: each row is
``(experiment, grp, period_start, period_end, version, alive)``, ``alive = false`` when a
period disappeared (two merged after a ramp was added in between). Flink keeps the newest
version per (experiment, group, period start), so a re-ramp that extends a period's end
updates it and the join downstream re-evaluates exactly (docs/streaming.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PeriodKey = tuple[str, str, int]  # experiment, group, period start


def current_periods(home: Any, window_ms: int) -> dict[PeriodKey, int]:
    """Every period of every group in the metadata store: key -> period end."""
    from metadata.repository import MetadataStore

    with MetadataStore.for_home(home) as store:
        experiments = store.experiments()
    return {
        (e.name, g.name, p.start): p.end
        for e in experiments
        for g in e.groups
        for p in g.periods(window_ms)
    }


class PeriodSnapshots:
    """The folder of period versions that the Flink source reads."""

    def __init__(self, root: Path):
        self.root = root

    def published(self) -> tuple[int, dict[PeriodKey, int]]:
        """The last version and the periods as of it."""
        version, periods = 0, {}
        for path in sorted(self.root.glob("v*.jsonl")):
            for line in path.read_text().splitlines():
                row = json.loads(line)
                key = (row["experiment"], row["grp"], row["period_start"])
                if row["alive"]:
                    periods[key] = row["period_end"]
                else:
                    periods.pop(key, None)
                version = max(version, row["version"])
        return version, periods

    def publish(self, periods: dict[PeriodKey, int]) -> int | None:
        """Write a new version with the rows that changed; the version, or None if none did."""
        self.root.mkdir(parents=True, exist_ok=True)
        version, old = self.published()
        version += 1
        rows = [
            {"experiment": e, "grp": g, "period_start": s, "period_end": end,
             "version": version, "alive": True}
            for (e, g, s), end in sorted(periods.items()) if old.get((e, g, s)) != end
        ]  # fmt: skip
        rows += [
            {"experiment": e, "grp": g, "period_start": s, "period_end": end,
             "version": version, "alive": False}
            for (e, g, s), end in sorted(old.items()) if (e, g, s) not in periods
        ]  # fmt: skip
        if not rows:
            return None
        target = self.root / f"v{version:08d}.jsonl"
        tmp = self.root / f".{target.name}.tmp"
        with tmp.open("w") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in rows))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)  # appears whole: the Flink source never reads half a version
        return version
