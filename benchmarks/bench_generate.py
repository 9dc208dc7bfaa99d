"""Benchmark ``udf generate``: wall time, events/s and peak RSS, against a naive baseline.

    .venv/bin/python benchmarks/bench_generate.py [--events 50000000] [--users 1000000]

Runs ``udf generate`` in a subprocess into a temporary directory for N events and for N/10
events (to show peak memory does not grow with N), measuring each subprocess's own peak RSS
with ``os.wait4``. Beside it, the baseline: a naive per-record ``json.dumps`` + write loop
(random records, no duplicates/late/ramps logic at all), timed over 1M records and
extrapolated linearly to N. The output directories are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_generate(args: list[str]) -> dict:
    """Run ``udf generate ARGS`` in a subprocess; wall time and that process's peak RSS."""
    cmd = [str(Path(sys.executable).with_name("udf")), "generate", *args, "--format", "json"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"udf generate failed ({proc.returncode}): {' '.join(args)}")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "summary": json.loads(stdout)}


def naive_baseline(records: int, out: Path) -> float:
    """Seconds for a per-record Python loop: draw a record, json.dumps it, write the line."""
    rng = random.Random(0)
    types = ["impression", "click", "search", "save", "share", "latency"]
    start = 1_767_225_600_000
    began = time.perf_counter()
    with open(out, "w", encoding="utf-8") as fh:
        for _ in range(records):
            rec = {
                "user_id": rng.randrange(1, 1 << 40),
                "event_type": rng.choice(types),
                "ts": start + rng.randrange(8 * 86_400_000),
            }
            if rng.random() < 0.5:
                rec["country"], rec["platform"] = "US", "ios"
            fh.write(json.dumps(rec) + "\n")
    return time.perf_counter() - began


def du_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--event-types", type=int, default=20)
    parser.add_argument("--baseline-records", type=int, default=1_000_000)
    parser.add_argument("--tmp", default=None, help="Parent of the temporary output dirs.")
    opts = parser.parse_args()

    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-", dir=opts.tmp))
    try:
        results = {}
        for label, events in (("N", opts.events), ("N/10", opts.events // 10)):
            out = tmp / f"out-{events}"
            args = ["--out", str(out), "--events", str(events), "--users", str(opts.users)]
            args += ["--event-types", str(opts.event_types)]
            res = run_generate(args)
            res["disk_mib"] = du_mib(out)
            shutil.rmtree(out)
            results[label] = (events, res)
            lines = sum(r["lines"] for r in res["summary"])
            print(
                f"udf generate {label} = {events:,} events ({lines:,} lines incl. activations and"
                f" corrupt): {res['wall_s']:.1f} s, {events / res['wall_s']:,.0f} events/s,"
                f" peak RSS {res['peak_rss_mib']:.0f} MiB, {res['disk_mib']:,.0f} MiB written"
            )
        base = naive_baseline(opts.baseline_records, tmp / "naive.jsonl")
        per_s = opts.baseline_records / base
        print(
            f"baseline (naive per-record json.dumps + write, events only): {opts.baseline_records:,}"
            f" records in {base:.1f} s = {per_s:,.0f} records/s; extrapolated to {opts.events:,}:"
            f" {opts.events / per_s:.0f} s"
        )
        (big_n, big), (small_n, small) = results["N"], results["N/10"]
        print(
            f"peak RSS ratio N vs N/10: {big['peak_rss_mib'] / small['peak_rss_mib']:.2f}"
            f" for {big_n / small_n:.0f}x the events"
        )
        print("summary of the N run:")
        for row in big["summary"]:
            print("  " + json.dumps(row))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
