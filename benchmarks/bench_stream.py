"""Benchmark the real-time pipeline: throughput beside plain Flink SQL, and freshness.

    nice .venv/bin/python benchmarks/bench_stream.py [--events 400000] [--live-seconds 60]
        [--live-rate 500]

In one run, on this machine, with the same PyFlink:

- **baseline**: a plain Flink SQL job over the same archive (the feed files the pipeline
  reads): the lines parsed with ``JSON_VALUE``, events joined with activations on the
  user, ``COUNT(*)`` grouped by experiment, group and event type, into a blackhole sink.
  Bounded, in a JVM with the options the pipeline's gets (``stream.jvm_options``); wall
  time from submission to the end.
- **pipeline**: ``udf stream replay`` of the same archive (the parsing and checks, the
  de-duplication, the spam cap, the periods, the activation-event join, the per-user per
  date values, the group sums, the two Python sinks with comparisons and the results
  store), in its own process; job time as the command reports it (from submission to the end).
- **freshness**: ``udf stream run`` on an empty home with one experiment ramped at
  midnight; every second a batch of ``--live-rate`` events (and their users' activations)
  stamped with the current time is imported; the time from a batch's import to the first
  moment the results store's rows count all its events is the batch's freshness (polled
  every 0.25 s). p50 and p99 over the batches after the first 10 s (the job's start).

Both throughputs run at ``--events`` and at a quarter of it: each size's rate includes the
job's start (planning, code generation, warm-up: 10-60 s here), and the *marginal rate*, the
extra events over the extra time, is the throughput without it.

Everything is deleted afterwards. The figures go in docs/benchmarks.md ("Streaming").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
UDF = str(Path(sys.executable).with_name("udf"))


def run_udf(home: Path, *args: str, timeout: float = 3600) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UDF_")}
    env["UDF_HOME"] = str(home)
    out = subprocess.run([UDF, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        raise SystemExit(f"udf {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def prepare(root: Path, events: int) -> tuple[Path, int, int]:
    """A home with a generated workload imported (no corrupt lines); events and activations."""
    workload = root / "workload"
    run_udf(root / "gen", "generate", "--out", str(workload), "--events", str(events),
            "--users", str(max(1000, events // 20)), "--experiments", "6", "--days", "5",
            "--corrupt-share", "0", "--seed", "3")  # fmt: skip
    home = root / "home"
    for topic in ("activations", "events"):
        files = sorted(str(p) for p in (workload / topic).glob("*.jsonl"))
        run_udf(home, "data", "import", "--topic", topic, *files)
    run_udf(home, "ramps", "import", str(workload / "ramps.csv"))
    counts = {
        t: sum(p.read_bytes().count(b"\n") for p in (home / "archive" / t).rglob("*.jsonl"))
        for t in ("events", "activations")
    }
    return home, counts["events"], counts["activations"]


def baseline(home: Path) -> float:
    """Seconds of a Flink SQL join + GROUP BY count over the archive's files."""
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from streaming.pipeline import start_jvm
    from udf.settings import StreamSettings

    start_jvm(StreamSettings().jvm_options)  # the JVM options the pipeline's job gets
    conf = Configuration()
    conf.set_string("parallelism.default", "2")
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.executable", sys.executable)
    t_env = TableEnvironment.create(
        EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build()
    )
    for topic in ("events", "activations"):
        path = (home / "archive" / topic).absolute().as_uri()
        t_env.execute_sql(
            f"CREATE TEMPORARY TABLE raw_{topic} (line STRING) WITH ('connector' = 'filesystem', "
            f"'path' = '{path}', 'format' = 'raw', 'source.path.regex-pattern' = '.*\\.jsonl')"
        )
    t_env.execute_sql(
        "CREATE TEMPORARY TABLE group_counts (experiment STRING, grp STRING, event_type STRING, c BIGINT) "
        "WITH ('connector' = 'blackhole')"
    )
    started = time.perf_counter()
    t_env.execute_sql(
        "INSERT INTO group_counts SELECT a.experiment, a.grp, e.event_type, COUNT(*) FROM "
        "(SELECT CAST(JSON_VALUE(line, '$.user_id') AS BIGINT) AS user_id, "
        " JSON_VALUE(line, '$.event_type') AS event_type FROM raw_events) e JOIN "
        "(SELECT DISTINCT CAST(JSON_VALUE(line, '$.user_id') AS BIGINT) AS user_id, "
        " JSON_VALUE(line, '$.experiment') AS experiment, JSON_VALUE(line, '$.group') AS grp "
        " FROM raw_activations) a ON e.user_id = a.user_id "
        "GROUP BY a.experiment, a.grp, e.event_type"
    ).wait()
    return time.perf_counter() - started


def pipeline(home: Path, settings: str | None = None) -> float:
    """Job seconds of ``udf stream replay`` (as its report says), with ``settings`` (the text
    of a settings.yaml) if given."""
    target = home / "settings.yaml"
    target.unlink(missing_ok=True)
    if settings is not None:
        target.write_text(settings)
    try:
        out = run_udf(home, "stream", "replay", "--fresh", "--format", "json")
    finally:
        target.unlink(missing_ok=True)
    return float(json.loads(out)[0]["seconds"])


# -- freshness --------------------------------------------------------------------------------


def freshness(root: Path, rate: int, seconds: int) -> tuple[list[float], int]:
    """Per imported batch: seconds from its import to its events all counted in the results."""
    import yaml

    from results.stores import open_store
    from udf.archive.importer import Importer
    from udf.home import Home
    from udf.settings import load_settings

    home = Home.resolve(root / "live").ensure()
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    ramp = int(midnight.timestamp() * 1000)
    (root / "ramps.csv").write_text(
        "experiment,group,ramp_ts,allocation\n"
        f"exp_live,control,{ramp},50\nexp_live,treatment,{ramp},50\n"
    )
    run_udf(home.root, "ramps", "import", str(root / "ramps.csv"))
    (home.root / "settings.yaml").write_text(yaml.safe_dump({"stream": {
        "flush_interval_seconds": 1, "feed_interval_seconds": 1, "monitor_seconds": 1,
        "mini_batch_latency_ms": 500, "checkpoint_interval_seconds": 10,
    }}))  # fmt: skip
    importer = Importer(home)
    user = [0]

    def batch(n: int, at: int, tag: int) -> None:
        """``n`` click events of ``n // 4`` new users, each activated just before its events."""
        events, acts = root / f"e{tag}.jsonl", root / f"a{tag}.jsonl"
        lines, act_lines = [], []
        for _ in range(n // 4):
            user[0] += 1
            u = user[0]
            group = "control" if u % 2 else "treatment"
            act_lines.append(json.dumps({"user_id": u, "experiment": "exp_live", "group": group,
                                         "ts": at - 1}))  # fmt: skip
            lines += [json.dumps({"user_id": u, "event_type": "click", "ts": at + j})
                      for j in range(4)]  # fmt: skip
        acts.write_text("".join(x + "\n" for x in act_lines))
        events.write_text("".join(x + "\n" for x in lines))
        importer.import_files("activations", [str(acts)], partitions=2)
        importer.import_files("events", [str(events)], partitions=2)

    # a first batch before the start (the job needs data to plan the day)
    now = int(time.time() * 1000)
    batch(rate, now, 0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UDF_")}
    env["UDF_HOME"] = str(home.root)
    log = (root / "run.log").open("w")
    process = subprocess.Popen([UDF, "stream", "run", "--fresh"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    settings = load_settings(home, {})
    imported: list[tuple[float, int]] = []  # (import time, cumulative events)
    counted: list[tuple[float, int]] = []  # (time seen, events in the results)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                with open_store(home, settings) as store:
                    rows = store.read(source="stream", metric_type="aggregated")
                total = sum(r.volume for r in rows if r.metric == "click" and r.segment == "")
                counted.append((time.monotonic(), total))
            except Exception:
                pass
            stop.wait(0.25)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        # wait for the job to count the first batch before feeding live
        deadline = time.monotonic() + 600
        while not counted or counted[-1][1] < rate:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(
                    f"the run did not start:\n{(root / 'run.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        total = rate
        for k in range(1, seconds + 1):
            tick = time.monotonic()
            batch(rate, int(time.time() * 1000), k)
            total += rate
            imported.append((time.monotonic(), total))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        deadline = time.monotonic() + 300
        while counted[-1][1] < total and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        poller.join()
        process.send_signal(15)
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
    delays = []
    lost = 0
    for at, need in imported:
        seen = next((t for t, n in counted if t >= at and n >= need), None)
        if seen is None:
            lost += 1
        else:
            delays.append(seen - at)
    return delays, lost


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    from udf.logging import configure

    configure()  # as the CLI: warnings only, and Beam's import warning silenced
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000, help="also run with a quarter")
    parser.add_argument("--live-seconds", type=int, default=60)
    parser.add_argument("--live-rate", type=int, default=500)
    parser.add_argument("--skip-freshness", action="store_true")
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="SETTINGS_YAML",
        help="also replay with this settings.yaml (e.g. the settings before a change), "
        "alternating with the defaults at each size; repeatable",
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    try:
        load = os.getloadavg()
        # two sizes: the difference of their times is the work of the extra events alone,
        # without the job's start (planning, code generation, the JVM's warm-up)
        variants = {"defaults": None, **{p.stem: p.read_text() for p in args.compare}}
        runs = {}
        for n in (args.events // 4, args.events):
            home, events, activations = prepare(root / str(n), n)
            piped = {name: pipeline(home, text) for name, text in variants.items()}
            runs[n] = (events, activations, baseline(home), piped)
        print(f"load average at start {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
        for events, activations, base, piped in runs.values():
            records = events + activations
            print(f"{events:,} events + {activations:,} activations:")
            print(
                f"  baseline Flink SQL join + GROUP BY count: {base:.1f} s, "
                f"{events / base:,.0f} events/s ({records / base:,.0f} records/s)"
            )
            for name, t in piped.items():
                label = "" if len(piped) == 1 else f", {name}"
                print(
                    f"  udf stream replay (whole pipeline{label}): {t:.1f} s, "
                    f"{events / t:,.0f} events/s ({records / t:,.0f} records/s)"
                )
        (e1, _, b1, p1), (e2, _, b2, p2) = runs.values()
        rates = ", ".join(
            f"pipeline{'' if len(p1) == 1 else f' ({name})'} {(e2 - e1) / (p2[name] - p1[name]):,.0f}"
            " events/s"
            for name in p1
        )
        print(
            f"marginal rate (the {e2 - e1:,} extra events over the time they added): "
            f"baseline {(e2 - e1) / (b2 - b1):,.0f} events/s, {rates}"
        )
        if not args.skip_freshness:
            delays, lost = freshness(root, args.live_rate, args.live_seconds)
            print(
                f"freshness at {args.live_rate} events/s for {args.live_seconds} s: "
                f"p50 {percentile(delays, 0.5):.1f} s, p99 {percentile(delays, 0.99):.1f} s, "
                f"max {max(delays):.1f} s over {len(delays)} batches ({lost} never seen)"
            )
        print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
