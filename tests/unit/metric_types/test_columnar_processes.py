"""Processes converting the same archive hours at once (parallel compute tasks on one home)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from metric_types.columnar import FINGERPRINT, convert
from udf.archive.importer import Importer
from udf.home import Home

REPO = Path(__file__).resolve().parents[3]
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
HOUR = 3_600_000
# Rebuild every hour ten times over (a new cap changes each hour's fingerprint), as fast
# as possible: every process rewrites the same hours at the same moments.
CONVERT = """
import sys
from metric_types.columnar import convert
from udf.home import Home
home = Home.resolve(sys.argv[1])
for cap in range(1000, 1010):
    convert(home, "events", spam_cap=cap, workers=1)
"""


def test_processes_converting_the_same_hours_at_once_all_succeed(
    home: Home, tmp_path: Path
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(
        "".join(
            json.dumps({"user_id": u, "event_type": "click", "ts": T0 + h * HOUR + u}) + "\n"
            for h in range(4) for u in range(50)
        )
    )  # fmt: skip
    Importer(home).import_files("events", [str(source)])
    command = [sys.executable, "-c", CONVERT, str(home.root)]
    workers = [
        subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, "\n".join(errors)[-3000:]
    hours = convert(home, "events", spam_cap=1000)
    assert len(hours) == 4
    for hour in hours:
        folder = Path(hour.path).parent
        assert sorted(p.name for p in folder.iterdir()) == [FINGERPRINT, "data.parquet"]
        assert pq.read_table(hour.path).num_rows == 50
