"""Benchmark ``udf compute`` (Spark) against DuckDB computing the same counts on the same files.

    .venv/bin/python benchmarks/bench_compute.py --home DIR [--scale default|pinterest]
        [--events N] [--date D]

The home is built once if it is missing (``udf generate`` with the scale's experiments, 20
event types and 1 M users, ``udf data import``, ``udf ramps import``) and reused afterwards;
a home remembers the scale it was built for. Then, in one run:

1. the JVM start (``get_session``), reported apart, as the issue asks;
2. the archive → Parquet conversion, cold (cache removed), which is part of Spark's time;
3. Spark, warm session: ``aggregated`` for the date with the 20 default metrics, then
   ``calendar_day``, ``days_in`` and ``custom`` with a small configured catalog;
4. DuckDB on the same raw archive files computing the same ``aggregated`` counts
   (de-duplication, hourly cap, exposure, counted events, per-group volume, propensity,
   n, sum, sum of squares per event type) for the same date, and checked equal to Spark's
   (in a process of its own, whose peak RSS is reported apart from this one's);
5. 15 versus 1,500 configured ``aggregated`` metrics on the same data (counts, sums and
   ratios over the 20 event types, selected by every experiment).

``--scale pinterest`` is Pinterest's daily load instead: 120 experiments (60 with two
groups, 60 with three: 300 groups), 100 M events over five weekdays (20 M a day), the
third day computed (every group's period covers it; its aggregated window starts on the
first day), as a daily schedule meets it: the days before are converted and computed. In one
run: the JVM start; the conversion of the days before, then of the day's own hours; for each
catalog (the 20 default metrics plus 15, 1,500 or 15,000 configured), ``aggregated`` for the
day before from nothing, then the day from the day before's per-user state; DuckDB's counts
checked equal after the first; then ``calendar_day``, ``days_in`` and ``custom`` once. The
whole daily run is the day's conversion, the other three types and the day's ``aggregated``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

UDF = str(Path(sys.executable).with_name("udf"))
DAY_MS = 86_400_000
SCALE_FILE = "bench-scale.json"  # in the home: the scale and events it was built with


@dataclass(frozen=True)
class Scale:
    """A workload (what ``udf generate`` writes), the day computed and the catalogs' sizes."""

    events: int  # over all days; the generator spreads them by hour (weekends 0.85x)
    experiments: int  # groups: 2 and 3 in turns of three experiments (``udf generate``)
    days: int
    start: str
    date: str
    metric_counts: tuple[int, ...]
    users: int = 1_000_000
    event_types: int = 20
    daily: bool = False  # the daily run's figures (True) or every metric type apart (False)


SCALES = {
    "default": Scale(20_000_000, 50, 10, "2026-01-01", "2026-01-06", (15, 1500)),
    # Monday to Friday, 20 M events a day; on Wednesday every period covers the whole day.
    "pinterest": Scale(
        100_000_000, 120, 5, "2026-01-05", "2026-01-07", (15, 1500, 15000), daily=True
    ),
}


def build_home(home: Path, scale: Scale, events: int) -> None:
    work = home.parent / f"{home.name}-workload"
    env = {**os.environ, "UDF_HOME": str(home)}
    subprocess.run(
        [UDF, "generate", "--out", str(work), "--events", str(events),
         "--users", str(scale.users), "--experiments", str(scale.experiments),
         "--event-types", str(scale.event_types), "--days", str(scale.days),
         "--start", scale.start, "--force"],
        check=True, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for topic in ("events", "activations"):
        files = sorted(str(p) for p in (work / topic).glob("*.jsonl"))
        subprocess.run([UDF, "data", "import", "--topic", topic, *files], check=True, env=env,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([UDF, "ramps", "import", str(work / "ramps.csv")], check=True, env=env,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    shutil.rmtree(work)  # the archive holds it now
    built = {**asdict(scale), "events": events}
    (home / SCALE_FILE).write_text(json.dumps(built, indent=2) + "\n")


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


def day_periods(experiments: list[Any], window_ms: int, day: date) -> list[tuple]:
    """(experiment, group, start, end) of every period open on ``day``: DuckDB's periods."""
    from metric_types.base import Day

    d = Day(day)
    return [
        (e.name, g.name, p.start, p.end)
        for e in experiments for g in e.groups for p in g.periods(window_ms)
        if p.start < d.end and p.end > d.start
    ]  # fmt: skip


def duckdb_counts_apart(
    home: Path, day: date, periods: list[tuple], cap: int
) -> tuple[float, dict, float]:
    """:func:`duckdb_counts` in a process of its own, with that process's peak RSS (MiB)."""
    import resource

    seconds, counts = duckdb_counts(home, day, periods, cap)
    return seconds, counts, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


def prepared_home(description: str, events: int | None = None) -> tuple[Path, str, Scale]:
    """The ``--home`` of a benchmark's command line (built if missing), its ``--date`` and
    its scale (``events``: the benchmark's own default number of events, if not the scale's)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--events", type=int, help="events over all days (default: the scale's)")
    parser.add_argument("--date", help="the day computed (default: the scale's)")
    parser.add_argument(
        "--metrics", help="catalog sizes to compare, e.g. 15,150 (default: the scale's)"
    )
    args = parser.parse_args()
    scale = SCALES[args.scale]
    if args.metrics:
        scale = replace(scale, metric_counts=tuple(int(n) for n in args.metrics.split(",")))
    total = args.events or events or scale.events
    home_dir = args.home.absolute()
    os.environ["UDF_HOME"] = str(home_dir)
    if not (home_dir / "archive").exists():
        print(f"building {home_dir} with {total:,} events ...", flush=True)
        build_home(home_dir, scale, total)
    marker = home_dir / SCALE_FILE
    if marker.exists():
        built = json.loads(marker.read_text())
        if any(
            built[k] != v for k, v in asdict(scale).items() if k in ("start", "experiments", "days")
        ):
            sys.exit(f"{home_dir} was built for another scale ({built}): use another --home")
    return home_dir, args.date or scale.date, scale


def window_rows(hours: list, first: int, until: int) -> int:
    """Rows of the converted hours overlapping ``[first, until)``: what the day's run reads."""
    import pyarrow.parquet as pq

    from metric_types.spark.readers import hours_between

    total = 0
    for path in hours_between(hours, first, until):
        files = [Path(path)] if Path(path).is_file() else sorted(Path(path).glob("*.parquet"))
        total += sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return total


def main() -> None:
    home_dir, on, scale = prepared_home(__doc__.split("\n\n")[0])

    from metadata.repository import MetadataStore
    from metric_types.base import Day
    from metric_types.columnar import convert
    from metric_types.spark.session import get_session
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve(home_dir)
    settings = load_settings(home)
    day = date.fromisoformat(on)
    print(f"# bench_compute: {platform.node()}, {os.cpu_count()} cores, date {day}, "
          f"load {load()}", flush=True)  # fmt: skip

    started = time.perf_counter()
    get_session(settings.spark).range(1).count()
    jvm = time.perf_counter() - started
    print(f"JVM start (excluded below): {jvm:.1f} s", flush=True)

    def converted(until: int) -> tuple[float, list, list]:
        started = time.perf_counter()
        hours = convert(home, "events", spam_cap=settings.spam_cap, ts_to=until)
        activations = convert(home, "activations", spam_cap=settings.spam_cap, ts_to=until)
        return time.perf_counter() - started, hours, activations

    shutil.rmtree(settings.columnar_location(home).local_path, ignore_errors=True)
    if scale.daily:  # the days before first, then the day's own hours: a daily run's share
        earlier, _, _ = converted(Day(day - timedelta(days=1)).end)
        conversion, hours, activations = converted(Day(day).end)
        print(
            f"archive -> Parquet: the days before {earlier:.1f} s, the day's hours "
            f"{conversion:.1f} s (cold, all at once: {earlier + conversion:.1f} s)",
            flush=True,
        )
    else:
        conversion, hours, activations = converted(Day(day).end)
        print(f"archive -> Parquet (cold): {conversion:.1f} s", flush=True)

    event_types = sorted({t for h in hours for t in h.event_types})
    infos = MetadataStore.for_home(home).experiments()
    experiments = [e.name for e in infos]
    periods = day_periods(infos, settings.window_ms, day)
    first = min(p[2] for p in periods)
    print(f"the day's run: {len({p[:2] for p in periods})} groups of {len(experiments)} "
          f"experiments; reads {window_rows(hours, first, Day(day).end):,} clean events "
          f"({window_rows(hours, Day(day).start, Day(day).end):,} on {day}) and "
          f"{window_rows(activations, first, Day(day).end):,} activations from "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(first / 1000))} UTC", flush=True)  # fmt: skip

    def check() -> tuple[bool, float]:
        """DuckDB's counts beside the stored rows of the 20 default metrics, and its time.
        DuckDB runs in a process of its own: its memory (most of the machine's, by default)
        would otherwise be this process's peak RSS, which the daily figures report."""
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            duck, expected, rss = pool.submit(
                duckdb_counts_apart, home_dir, day, periods, settings.spam_cap
            ).result()
        print(f"duckdb aggregated counts (raw JSONL): {duck:.1f} s, {len(expected)} group rows; "
              f"peak RSS of its process {rss:,.0f} MiB")  # fmt: skip
        found = stored_counts(home, settings, day, event_types)
        agree = found == expected
        print(f"spark and duckdb counts agree: {agree}", flush=True)
        return agree, duck

    if scale.daily:
        agree = daily_runs(home, scale, day, event_types, experiments, conversion, jvm, check)
    else:
        agree = type_runs(home, scale, day, event_types, experiments, conversion, check)
    print(f"# load at the end: {load()}")
    if not agree:
        sys.exit("spark and duckdb disagree")


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def stored_counts(home: Any, settings: Any, day: date, event_types: list[str]) -> dict:
    """The stored ``aggregated`` counts of the default metrics, keyed as DuckDB's."""
    from results.stores import open_store

    with open_store(home, settings) as results:
        rows = results.read(source="batch", metric_type="aggregated", date_from=day, date_to=day,
                            metrics=event_types)  # fmt: skip
    return {
        (r.experiment, r.group, r.period_start, r.metric): (r.volume, r.propensity, r.sum_sq, r.exposed)
        for r in rows if r.segment == "" and r.volume
    }  # fmt: skip


def type_runs(
    home: Any, scale: Scale, day: date, event_types: list[str], experiments: list[str],
    conversion: float, check: Callable[[], tuple[bool, float]],
) -> bool:  # fmt: skip
    """The default scale: every metric type, DuckDB, then 15 vs 1,500 configured metrics."""
    from metric_types.compute import compute

    home_dir = home.root
    load_catalog(home_dir, catalog(event_types, experiments, scale.metric_counts[0]))
    figures = {}
    for metric_type in ("aggregated", "aggregated", "calendar_day", "days_in", "custom"):
        only = event_types if metric_type == "aggregated" else None
        report = compute(home, metric_type, [day], metrics=only)
        figures[metric_type] = report.seconds
        print(f"spark {metric_type:<12} {report.seconds:6.1f} s  {len(report.metrics)} metrics, "
              f"{report.rows} rows", flush=True)  # fmt: skip
    agree, duck = check()
    spark_total = conversion + figures["aggregated"]
    print(f"spark aggregated incl. conversion: {spark_total:.1f} s = "
          f"{spark_total / duck:.1f}x duckdb; warm cache {figures['aggregated'] / duck:.1f}x")  # fmt: skip
    timings = {}
    for count in scale.metric_counts:
        load_catalog(home_dir, catalog(event_types, experiments, count))
        names = [f"bench_{i:04d}" for i in range(count)]
        report = compute(home, "aggregated", [day], metrics=names)
        timings[count] = report.seconds
        print(f"spark {count:>5} metrics: {report.seconds:.1f} s, {report.rows} rows", flush=True)
    low, high = scale.metric_counts[0], scale.metric_counts[-1]
    print(f"{high:,} vs {low:,} metrics: {timings[high] / timings[low]:.1f}x the time")
    return agree


def daily_runs(
    home: Any,
    scale: Scale,
    day: date,
    event_types: list[str],
    experiments: list[str],
    conversion: float,
    jvm: float,
    check: Callable[[], tuple[bool, float]],
) -> bool:
    """Pinterest's daily load, as a daily schedule runs it: for each catalog, ``aggregated``
    for the day before (from nothing: the catalog is new), then for the day, which starts from
    the day before's per-user state (``batch.reuse_days``); then the other types once.

    ``conversion`` is the conversion of the day's own hours. The whole daily run is the day's conversion, ``aggregated`` of the day and the other three types;
    the day before's figure shows what ``aggregated`` costs with no state to start from.
    """
    import resource

    from metric_types.compute import compute

    home_dir = home.root
    agree = True
    aggregated: dict[int, float] = {}
    before = day - timedelta(days=1)
    for i, count in enumerate(scale.metric_counts):
        started = time.perf_counter()
        load_catalog(home_dir, catalog(event_types, experiments, count))
        loaded = time.perf_counter() - started
        first = compute(home, "aggregated", [before])
        report = compute(home, "aggregated", [day])
        aggregated[count] = report.seconds
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"daily aggregated, {len(report.metrics):,} metrics ({count:,} configured + "
              f"defaults): {report.seconds:.1f} s from {before}'s state ({first.seconds:.1f} s "
              f"for {before} from nothing), {report.rows:,} rows; config load {loaded:.1f} s "
              f"apart; peak RSS {peak:,.0f} MiB; load {load()}", flush=True)  # fmt: skip
        if i == 0:
            agree, duck = check()
            print(f"spark daily aggregated / duckdb: {report.seconds / duck:.1f}x; incl. the "
                  f"day's conversion {(report.seconds + conversion) / duck:.1f}x", flush=True)  # fmt: skip
    others = 0.0
    for metric_type in ("calendar_day", "days_in", "custom"):
        report = compute(home, metric_type, [day])
        others += report.seconds
        print(f"spark {metric_type:<12} {report.seconds:6.1f} s  {len(report.metrics)} metrics, "
              f"{report.rows:,} rows; failed: {report.failed_on(day) or 'none'}", flush=True)  # fmt: skip
    base = scale.metric_counts[min(1, len(scale.metric_counts) - 1)]
    for count in scale.metric_counts:
        whole = conversion + others + aggregated[count]
        print(f"{count:>6,} metrics: whole daily run {whole:.1f} s ({whole + jvm:.1f} s with "
              f"the JVM start); aggregated {aggregated[count] / aggregated[base]:.2f}x, whole "
              f"daily run {whole / (conversion + others + aggregated[base]):.2f}x the "
              f"{base:,}-metric run")  # fmt: skip
    return agree


if __name__ == "__main__":
    main()
