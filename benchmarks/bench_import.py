"""Benchmark ``udf data import`` against DuckDB doing the same job on the same files.

    .venv/bin/python benchmarks/bench_import.py [--events 5000000] [--tmp DIR]

Generates a workload with ``udf generate`` (1% corrupt lines), then, in the same run:

- ``udf data import --topic events`` over its event files, in a subprocess (wall time,
  records/s, peak RSS): validation, dead letters, hour/partition routing, journaled
  appends with fsync, duplicate detection;
- the baseline: DuckDB reading the same files with explicit column types and
  ``ignore_errors`` and writing them out hive-partitioned by day and hour as JSON
  (``COPY ... PARTITION_BY``), using every core. It neither dead-letters nor keeps arrival
  order per partition, so it is a floor, not an equivalent.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

UDF = str(Path(sys.executable).with_name("udf"))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run ``cmd``; its wall time in seconds and its own peak RSS in MiB."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{cmd[:3]} failed with status {status}")
    return elapsed, usage.ru_maxrss // 1024


def duckdb_baseline(files: list[Path], out: Path) -> tuple[float, int]:
    import duckdb

    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(
        """
        COPY (
          SELECT *, strftime(to_timestamp(ts / 1000), '%Y-%m-%d') AS dt,
                    strftime(to_timestamp(ts / 1000), '%H') AS hour
          FROM read_json($files, format = 'newline_delimited', ignore_errors = true,
                         columns = {user_id: 'BIGINT', event_type: 'VARCHAR', ts: 'BIGINT',
                                    value: 'DOUBLE', country: 'VARCHAR', platform: 'VARCHAR'})
          WHERE user_id IS NOT NULL AND event_type IS NOT NULL AND ts IS NOT NULL
        ) TO '{out}' (FORMAT json, PARTITION_BY (dt, hour))
        """.replace("{out}", str(out)),
        {"files": [str(f) for f in files]},
    )
    elapsed = time.perf_counter() - started
    rows = con.execute(
        f"SELECT count(*) FROM read_json('{out}/**/*.json', format = 'newline_delimited')"
    ).fetchone()[0]
    return elapsed, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-import-", dir=args.tmp))
    env = dict(os.environ, UDF_HOME=str(base / "home"))
    try:
        workload = base / "workload"
        users = max(10_000, args.events // 50)
        subprocess.run(
            [
                UDF,
                "generate",
                "--out",
                str(workload),
                "--events",
                str(args.events),
                "--users",
                str(users),
                "--corrupt-share",
                "0.01",
                "--format",
                "json",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        files = sorted((workload / "events").glob("*.jsonl"))
        lines = sum(1 for f in files for _ in f.open("rb"))
        size = sum(f.stat().st_size for f in files)
        udf_s, udf_rss = timed([UDF, "data", "import", "--topic", "events", *map(str, files)], env)
        duck_s, duck_rows = duckdb_baseline(files, base / "duckdb")

        print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        print(f"input: {len(files)} files, {lines:,} lines (1% corrupt), {size / 2**20:,.0f} MiB")
        print(
            f"udf data import: {udf_s:.1f} s, {lines / udf_s:,.0f} lines/s, peak RSS {udf_rss} MiB (one core)"
        )
        print(
            f"baseline DuckDB read_json -> COPY PARTITION_BY (dt, hour): {duck_s:.1f} s, "
            f"{lines / duck_s:,.0f} lines/s, {duck_rows:,} rows kept (all cores)"
        )
        print(f"ratio udf / DuckDB: {udf_s / duck_s:.1f}x")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
