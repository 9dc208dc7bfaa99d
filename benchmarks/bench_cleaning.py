"""Benchmark the two cleanings (de-duplication and the spam cap): local pyarrow threads vs Spark.

    .venv/bin/python benchmarks/bench_cleaning.py --home DIR [--events 2000000] [--date D]

The home is built once if it is missing, as ``bench_compute.py`` builds it (``udf generate``
with 50 experiments and 20 event types over 10 days, duplicates, spammers, 1% corrupt
lines), and reused afterwards. Then, in one run and one Spark session (its start reported
apart), each cleaning converts every archive hour up to the end of ``--date`` into a copy of
its own, cold (copy removed first) and then warm (every hour cached), and the two copies are
checked equal hour by hour (rows, event types, corrupt lines). Figures are printed side by side.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_compute import prepared_home


def main() -> None:
    home_dir, on, _ = prepared_home(__doc__.split("\n\n")[0], 2_000_000)

    import pyarrow.parquet as pq

    from metric_types.base import Day
    from metric_types.columnar import convert
    from metric_types.spark.session import get_session
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve(home_dir)
    base = load_settings(home)
    until = Day(date.fromisoformat(on)).end
    archive_bytes = sum(p.stat().st_size for p in (home_dir / "archive").rglob("part-*.jsonl"))
    print(f"# bench_cleaning: {platform.node()}, {os.cpu_count()} cores, through {on}, "
          f"archive {archive_bytes / 1e6:.0f} MB", flush=True)  # fmt: skip
    started = time.perf_counter()
    get_session(base.spark).range(1).count()
    print(f"JVM start (excluded below): {time.perf_counter() - started:.1f} s", flush=True)

    figures: dict[str, dict[str, float]] = {}
    copies = {}
    for cleaning in ("local", "spark"):
        out = home_dir / f"bench-columnar-{cleaning}"
        shutil.rmtree(out, ignore_errors=True)
        settings = base.model_copy(
            update={"spark": base.spark.model_copy(update={"cleaning": cleaning}),
                    "archive": base.archive.model_copy(update={"columnar_uri": str(out)})}
        )  # fmt: skip
        for run in ("cold", "warm"):
            started = time.perf_counter()
            hours = {
                topic: convert(
                    home, topic, spam_cap=settings.spam_cap, ts_to=until, settings=settings
                )
                for topic in ("events", "activations")
            }
            figures.setdefault(cleaning, {})[run] = time.perf_counter() - started
            print(f"{cleaning} {run}: {figures[cleaning][run]:.1f} s", flush=True)
        copies[cleaning] = hours

    def summary(hours: dict) -> dict:
        return {
            (topic, h.hour): (pq.ParquetDataset(h.path.removeprefix("file://")).read().num_rows
                              if h.path else 0, h.event_types, h.corrupt)
            for topic, found in hours.items() for h in found
        }  # fmt: skip

    local, spark = summary(copies["local"]), summary(copies["spark"])
    agree = local == spark
    rows = sum(v[0] for k, v in local.items() if k[0] == "events")
    print(f"hours {len(local)}, clean events {rows:,}; local and spark copies agree: {agree}")
    print(f"{'':14}{'local':>10}{'spark':>10}{'spark/local':>13}")
    for run in ("cold", "warm"):
        a, b = figures["local"][run], figures["spark"][run]
        print(f"{run + ' (s)':14}{a:10.1f}{b:10.1f}{b / a:12.1f}x")
    if not agree:
        sys.exit("the two cleanings disagree")


if __name__ == "__main__":
    main()
