"""Benchmark ``udf compute`` (Spark) against DuckDB computing the same counts on the same files.

    .venv/bin/python benchmarks/bench_compute.py --home DIR [--events 20000000] [--date D]

The home is built once if it is missing (``udf generate`` with 50 experiments and 20 event
types, ``udf data import``, ``udf ramps import``) and reused afterwards. Then, in one run:

1. the JVM start (``get_session``), reported apart, as the issue asks;
2. the archive → Parquet conversion, cold (cache removed), which is part of Spark's time;
3. Spark, warm session: ``aggregated`` for the date with the 20 default metrics, then
   ``calendar_day``, ``days_in`` and ``custom`` with a small configured catalog;
4. DuckDB on the same raw archive files computing the same ``aggregated`` counts
   (de-duplication, hourly cap, exposure, counted events, per-group volume, propensity,
   n, sum, sum of squares per event type) for the same date, and checked equal to Spark's;
5. 15 versus 1,500 configured ``aggregated`` metrics on the same data (counts, sums and
   ratios over the 20 event types, selected by every experiment).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import yaml

UDF = str(Path(sys.executable).with_name("udf"))
DAY_MS = 86_400_000


def build_home(home: Path, events: int) -> None:
    work = home.parent / f"{home.name}-workload"
    env = {**os.environ, "UDF_HOME": str(home)}
    subprocess.run(
        [UDF, "generate", "--out", str(work), "--events", str(events), "--users", "1000000",
         "--experiments", "50", "--event-types", "20", "--days", "10", "--force"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for topic in ("events", "activations"):
        files = sorted(str(p) for p in (work / topic).glob("*.jsonl"))
        subprocess.run([UDF, "data", "import", "--topic", topic, *files], check=True, env=env,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([UDF, "ramps", "import", str(work / "ramps.csv")], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def catalog(event_types: list[str], experiments: list[str], count: int) -> dict:
    """``count`` aggregated metrics cycling through counts, sums and ratios of the types."""
    metrics = []
    kinds = len(event_types)
    for i in range(count):
        a, b = event_types[i % kinds], event_types[(i // kinds + i + 1) % kinds]
        shape = (i // kinds) % 3
        spec: dict = {"name": f"bench_{i:04d}", "type": "aggregated"}
        if shape == 0:
            spec["event_type"] = a
        elif shape == 1:
            spec.update(event_type=a, statistic="sum")
        else:
            spec["ratio"] = {"numerator": {"event_type": a}, "denominator": {"event_type": b}}
        metrics.append(spec)
    extra = [
        {"name": "bench_daily", "type": "calendar_day", "event_type": event_types[0]},
        {"name": "bench_days_in", "type": "days_in", "event_type": event_types[1], "days": [1, 2, 3]},
        {"name": "bench_custom", "type": "custom",
         "sql": "SELECT experiment, `group`, period_start, user_id, "
                "COUNT(DISTINCT event_type) AS value FROM counted_events GROUP BY 1, 2, 3, 4"},
    ]  # fmt: skip
    names = [m["name"] for m in metrics + extra]
    return {
        "metrics": metrics + extra,
        "experiments": [{"experiment": e, "metrics": names} for e in experiments],
    }


def load_catalog(home: Path, spec: dict) -> None:
    folder = home / "bench-catalog"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    (folder / "catalog.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    subprocess.run([UDF, "--home", str(home), "config", "load", str(folder)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


DUCKDB_COUNTS = """
WITH ev AS (
  SELECT DISTINCT user_id, event_type, ts
  FROM read_json($events, format = 'newline_delimited',
                 columns = {user_id: 'BIGINT', event_type: 'VARCHAR', ts: 'BIGINT'})
  WHERE ts >= $first AND ts < $until
), capped AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY user_id, ts // 3600000
                                 ORDER BY ts, event_type) AS rn FROM ev)
  WHERE rn <= $cap
), act AS (
  SELECT * FROM read_json($activations, format = 'newline_delimited',
                          columns = {user_id: 'BIGINT', experiment: 'VARCHAR',
                                     "group": 'VARCHAR', ts: 'BIGINT'})
  WHERE ts >= $first AND ts < $until
), exposed AS (
  SELECT a.experiment, a."group", p.period_start, p.period_end, a.user_id, min(a.ts) AS t_u
  FROM act a JOIN periods p ON a.experiment = p.experiment AND a."group" = p."group"
  WHERE a.ts >= p.period_start AND a.ts < p.period_end
  GROUP BY ALL HAVING min(a.ts) < $until
), per_user AS (
  SELECT x.experiment, x."group", x.period_start, x.user_id, c.event_type, count(*) AS n
  FROM capped c JOIN exposed x USING (user_id)
  WHERE c.ts >= x.t_u AND c.ts < x.period_end
  GROUP BY ALL
)
SELECT u.experiment, u."group", u.period_start, u.event_type, sum(u.n) AS volume,
       count(*) AS propensity, sum(u.n * u.n) AS sum_sq, any_value(e.exposed) AS exposed
FROM per_user u JOIN (
  SELECT experiment, "group", period_start, count(*) AS exposed FROM exposed GROUP BY ALL
) e USING (experiment, "group", period_start)
GROUP BY ALL
"""


def duckdb_counts(home: Path, day: date, periods: list[tuple], cap: int) -> tuple[float, dict]:
    import duckdb

    from metric_types.base import Day

    d = Day(day)
    con = duckdb.connect()
    con.execute('CREATE TABLE periods (experiment VARCHAR, "group" VARCHAR, '
                "period_start BIGINT, period_end BIGINT)")  # fmt: skip
    con.executemany("INSERT INTO periods VALUES (?, ?, ?, ?)", periods)
    params = {
        "events": str(home / "archive/events/*/*/*.jsonl"),
        "activations": str(home / "archive/activations/*/*/*.jsonl"),
        "first": min(p[2] for p in periods), "until": d.end, "cap": cap,
    }  # fmt: skip
    started = time.perf_counter()
    rows = con.execute(DUCKDB_COUNTS, params).fetchall()
    elapsed = time.perf_counter() - started
    return elapsed, {(r[0], r[1], r[2], r[3]): tuple(int(v) for v in r[4:]) for r in rows}


def prepared_home(description: str, events: int) -> tuple[Path, str]:
    """The ``--home`` of a benchmark's command line (built if missing) and its ``--date``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--events", type=int, default=events)
    parser.add_argument("--date", default="2026-01-06")
    args = parser.parse_args()
    home_dir = args.home.absolute()
    os.environ["UDF_HOME"] = str(home_dir)
    if not (home_dir / "archive").exists():
        print(f"building {home_dir} with {args.events:,} events ...", flush=True)
        build_home(home_dir, args.events)
    return home_dir, args.date


def main() -> None:
    home_dir, on = prepared_home(__doc__.split("\n\n")[0], 20_000_000)

    from metadata.repository import MetadataStore
    from metric_types.base import Day
    from metric_types.columnar import convert
    from metric_types.compute import compute
    from metric_types.spark.session import get_session
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve(home_dir)
    settings = load_settings(home)
    day = date.fromisoformat(on)
    print(f"# bench_compute: {platform.node()}, {os.cpu_count()} cores, date {day}", flush=True)

    started = time.perf_counter()
    get_session(settings.spark).range(1).count()
    jvm = time.perf_counter() - started
    print(f"JVM start (excluded below): {jvm:.1f} s", flush=True)

    shutil.rmtree(settings.columnar_location(home).local_path, ignore_errors=True)
    started = time.perf_counter()
    hours = convert(home, "events", spam_cap=settings.spam_cap, ts_to=Day(day).end)
    convert(home, "activations", spam_cap=settings.spam_cap, ts_to=Day(day).end)
    conversion = time.perf_counter() - started
    print(f"archive -> Parquet (cold): {conversion:.1f} s", flush=True)

    event_types = sorted({t for h in hours for t in h.event_types})
    store = MetadataStore.for_home(home)
    experiments = [e.name for e in store.experiments()]
    load_catalog(home_dir, catalog(event_types, experiments, 15))

    figures = {}
    for metric_type in ("aggregated", "aggregated", "calendar_day", "days_in", "custom"):
        only = event_types if metric_type == "aggregated" else None
        report = compute(home, metric_type, [day], metrics=only)
        figures[metric_type] = report.seconds
        print(f"spark {metric_type:<12} {report.seconds:6.1f} s  {len(report.metrics)} metrics, "
              f"{report.rows} rows", flush=True)  # fmt: skip

    plan_periods = [
        (e.name, g.name, p.start, p.end)
        for e in store.experiments() for g in e.groups for p in g.periods(settings.window_ms)
        if p.start < Day(day).end and p.end > Day(day).start
    ]  # fmt: skip
    duck, expected = duckdb_counts(home_dir, day, plan_periods, settings.spam_cap)
    print(f"duckdb aggregated counts (raw JSONL): {duck:.1f} s, {len(expected)} group rows")
    from results.stores import open_store

    spark_rows = {
        (r.experiment, r.group, r.period_start, r.metric): (r.volume, r.propensity, r.sum_sq, r.exposed)
        for r in open_store(home, settings).read(source="batch", metric_type="aggregated",
                                                 date_from=day, date_to=day)
        if r.metric in event_types and r.segment == "" and r.volume
    }  # fmt: skip
    agree = spark_rows == expected
    print(f"spark and duckdb counts agree: {agree}")
    spark_total = conversion + figures["aggregated"]
    print(f"spark aggregated incl. conversion: {spark_total:.1f} s = "
          f"{spark_total / duck:.1f}x duckdb; warm cache {figures['aggregated'] / duck:.1f}x")  # fmt: skip

    timings = {}
    for count in (15, 1500):
        load_catalog(home_dir, catalog(event_types, experiments, count))
        names = [f"bench_{i:04d}" for i in range(count)]
        report = compute(home, "aggregated", [day], metrics=names)
        timings[count] = report.seconds
        print(f"spark {count:>5} metrics: {report.seconds:.1f} s, {report.rows} rows", flush=True)
    print(f"1,500 vs 15 metrics: {timings[1500] / timings[15]:.1f}x the time")
    if not agree:
        sys.exit("spark and duckdb disagree")


if __name__ == "__main__":
    main()
