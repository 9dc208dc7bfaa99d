"""Issue 16's flat daily cost: ``aggregated`` on each day of a 7-day window, with and without
reuse across days, beside DuckDB.

    .venv/bin/python benchmarks/bench_daily_cost.py --home DIR [--events-per-day 200000]

The home is built once if it is missing: ``udf generate`` with the same volume of events on
each of 9 days, a 7-day window (``window_days: 7`` in its settings.yaml), 10 experiments
(single ramps and re-ramps, as the generator makes them), imported. Then, in one Spark session:

1. the archive converted to Parquet once (reported apart: the cache a daily run reuses),
   and day 1 computed once without reuse to warm the session (reported apart);
2. **no reuse** (``batch.reuse_days: false``): for day 1 to day 7 of the window,
   ``aggregated`` with the default metrics computed for that day alone, from the periods'
   start, timed; DuckDB computing the same counts for that day from the raw files (the query
   of ``bench_compute.py``), checked equal;
3. **reuse** (``batch.reuse_days: true``, the default), the stored per-user states deleted
   first: day 1 to day 7 again, one ``compute`` per day as a daily schedule runs them, so
   day ``d`` starts from day ``d - 1``'s state (:mod:`metric_types.partials`) and reads only
   its own hours; each day's stored counts checked equal to DuckDB's;
4. day 7 / day 1 for the three. A flat daily cost is a ratio near 1. DuckDB (and Spark
   without reuse) computes each day from the period's start (a metric-day is cumulative).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
UDF = str(Path(sys.executable).with_name("udf"))
WINDOW_DAYS, DAYS, START = 7, 9, date(2026, 1, 1)


def build_home(home: Path, per_day: int) -> None:
    work = home.parent / f"{home.name}-workload"
    env = {**os.environ, "UDF_HOME": str(home)}
    quiet = {"check": True, "env": env, "stdout": subprocess.DEVNULL}
    subprocess.run(
        [UDF, "generate", "--out", str(work), "--events", str(per_day * DAYS), "--users",
         str(max(10_000, per_day // 4)), "--experiments", "10", "--days", str(DAYS),
         "--start", START.isoformat(), "--window-days", str(WINDOW_DAYS), "--force"],
        **quiet,
    )  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.yaml").write_text(f"window_days: {WINDOW_DAYS}\n")
    for topic in ("events", "activations"):
        files = sorted(str(p) for p in (work / topic).glob("*.jsonl"))
        subprocess.run([UDF, "data", "import", "--topic", topic, *files], **quiet)
    subprocess.run([UDF, "ramps", "import", str(work / "ramps.csv")], **quiet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--events-per-day", type=int, default=1_000_000)
    args = parser.parse_args()
    home_dir = args.home.absolute()
    os.environ["UDF_HOME"] = str(home_dir)
    if not (home_dir / "archive").exists():
        print(f"building {home_dir} with {args.events_per_day:,} events a day ...", flush=True)
        build_home(home_dir, args.events_per_day)

    from bench_compute import day_periods, duckdb_counts, stored_counts

    from metadata.repository import MetadataStore
    from metric_types.base import Day
    from metric_types.columnar import convert
    from metric_types.compute import compute
    from metric_types.partials import FOLDER as PARTIALS
    from metric_types.spark.session import get_session
    from udf.home import Home
    from udf.settings import BatchSettings, load_settings

    home = Home.resolve(home_dir)
    settings = load_settings(home)
    assert settings.window_days == WINDOW_DAYS, "the home's settings.yaml sets the window"
    plain = settings.model_copy(update={"batch": BatchSettings(reuse_days=False)})
    reuse = settings.model_copy(update={"batch": BatchSettings(reuse_days=True)})
    print(f"# bench_daily_cost: {platform.node()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    started = time.perf_counter()
    get_session(settings.spark).range(1).count()
    print(f"JVM start (excluded): {time.perf_counter() - started:.1f} s", flush=True)
    last = START + timedelta(days=WINDOW_DAYS - 1)
    started = time.perf_counter()
    hours = convert(home, "events", spam_cap=settings.spam_cap, ts_to=Day(last).end)
    convert(home, "activations", spam_cap=settings.spam_cap, ts_to=Day(last).end)
    print(f"archive -> Parquet, all days (excluded): {time.perf_counter() - started:.1f} s")
    event_types = sorted({t for h in hours for t in h.event_types})
    experiments = MetadataStore.for_home(home).experiments()

    started = time.perf_counter()  # the session's first query pays code generation
    compute(home, "aggregated", [START], metrics=event_types, settings=plain)
    print(f"warm-up (day 1, excluded): {time.perf_counter() - started:.1f} s", flush=True)

    days = [START + timedelta(days=n) for n in range(WINDOW_DAYS)]
    spark: dict[int, float] = {}
    duck: dict[int, float] = {}
    expected: dict[int, dict] = {}
    print("no reuse:")
    print(f"{'day':>4} {'date':>10} {'spark s':>8} {'duckdb s':>9} {'groups':>7}  agree")
    for n, day in enumerate(days, 1):
        spark[n] = compute(home, "aggregated", [day], metrics=event_types, settings=plain).seconds
        periods = day_periods(experiments, settings.window_ms, day)
        duck[n], expected[n] = duckdb_counts(home_dir, day, periods, settings.spam_cap)
        agree = stored_counts(home, settings, day, event_types) == expected[n]
        print(f"{n:>4} {day.isoformat():>10} {spark[n]:>8.1f} {duck[n]:>9.1f} {len(expected[n]):>7}  {agree}",
              flush=True)  # fmt: skip
        if not agree:
            sys.exit(f"day {n}: spark and duckdb disagree")

    shutil.rmtree(settings.columnar_location(home).local_path / PARTIALS, ignore_errors=True)
    reused: dict[int, float] = {}
    print("reuse (each day from the previous day's per-user state):")
    print(f"{'day':>4} {'date':>10} {'spark s':>8}  agree")
    for n, day in enumerate(days, 1):
        reused[n] = compute(home, "aggregated", [day], metrics=event_types, settings=reuse).seconds
        agree = stored_counts(home, settings, day, event_types) == expected[n]
        print(f"{n:>4} {day.isoformat():>10} {reused[n]:>8.1f}  {agree}", flush=True)
        if not agree:
            sys.exit(f"day {n}: spark with reuse and duckdb disagree")
    w = WINDOW_DAYS
    print(f"day {w} / day 1: spark with reuse {reused[w] / reused[1]:.2f}x, "
          f"spark without {spark[w] / spark[1]:.2f}x, duckdb {duck[w] / duck[1]:.2f}x")  # fmt: skip
    print(f"mean of days 2-{w}: spark with reuse {sum(reused[n] for n in range(2, w + 1)) / (w - 1):.1f} s, "
          f"without {sum(spark[n] for n in range(2, w + 1)) / (w - 1):.1f} s, "
          f"duckdb {sum(duck[n] for n in range(2, w + 1)) / (w - 1):.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
