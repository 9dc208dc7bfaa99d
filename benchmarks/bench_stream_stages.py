"""Where the replay's time goes: the pipeline cut after successive stages, marginal rates.

    nice .venv/bin/python benchmarks/bench_stream_stages.py [--events 400000]
        [--stages read,parse,filter,changes,totals,outputs,full]

Each stage is ``udf stream replay``'s job (same environment, source and settings) cut after
that stage, its output into a blackhole sink; ``full`` is the whole pipeline with its two
Python sinks. Stages, each including the ones before:

- ``read``: the lines only, unchecked (both topics): the floor of any job over the archive;
- ``parse``: the lines checked and typed (both topics);
- ``filter``: + the periods join (the filtered topics);
- ``changes``: + the per-user operator (de-duplication, spam cap, first trigger time, the
  activation-event join, the users' values) and the sum of its changes (``changes``);
- ``totals``: + the running sums and the series (``totals``, ``series``), no Python sink;
- ``outputs``: + every other output of the jobs (progress, dead letters, event types), no
  Python sink;
- ``full``: the pipeline as ``udf stream replay`` runs it.

Every stage runs over the same two archives (``--events`` and a quarter of it), each run in
its own process (a fresh JVM, as the replay command); the marginal rate is the extra events
over the extra time (the job's start left out). Everything is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STAGES = ("read", "parse", "filter", "changes", "totals", "outputs", "full")


def _blackhole(t_env: Any, statements: Any, name: str) -> None:
    """Insert view ``name`` (its columns but a processing-time one) into a blackhole."""
    from pyflink.java_gateway import get_gateway

    columns = [c for c in t_env.from_path(name).get_schema().get_field_names() if c != "proc"]
    table = t_env.sql_query(f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM {name}")
    api = get_gateway().jvm.org.apache.flink.table.api
    schema = api.Schema.newBuilder().fromResolvedSchema(table._j_table.getResolvedSchema())
    descriptor = api.TableDescriptor.forConnector("blackhole").schema(schema.build()).build()
    t_env._j_tenv.createTemporaryTable(f"bh_{name}", descriptor)
    statements.add_insert(f"bh_{name}", table)


def cut_build(stage: str) -> Any:
    """A ``pipeline.build`` that stops after ``stage`` (``full``: the real one)."""
    from streaming import pipeline
    from streaming.jobs import aggregation, filter_activations, filter_events, local_sink

    real = pipeline.build
    if stage == "full":
        return real

    def build(env: Any, t_env: Any, source: Any, plan: Any, cfg: Any) -> None:
        tables = source.register(t_env)
        sink = local_sink(t_env)
        statements = t_env.create_statement_set()
        if stage == "read":
            for topic, table in (("events", tables.events), ("activations", tables.activations)):
                t_env.create_temporary_view(
                    f"lines_{topic}", t_env.sql_query(f"SELECT line FROM {table}")
                )
                _blackhole(t_env, statements, f"lines_{topic}")
            statements.attach_as_datastream()
            return
        if stage == "parse":
            sink("checked_events", filter_events.checked(t_env, tables, plan), changelog=False)
            sink("checked_activations", filter_activations.checked(t_env, tables), changelog=False)
            for name in ("checked_events", "checked_activations"):
                _blackhole(t_env, statements, name)
            statements.attach_as_datastream()
            return
        filter_events.build(t_env, tables, sink, plan)
        filter_activations.build(t_env, tables, sink, plan)
        filter_activations.add_periods(t_env, "valid_activations", tables.periods, sink)
        outputs = ["filtered_events", "filtered_activations"]
        if stage == "changes":
            aggregation.per_user(t_env, {"filtered_events": "filtered_events",
                                         "filtered_activations": "filtered_activations"},
                                 sink, plan)  # fmt: skip
            outputs = ["changes"]
        elif stage in ("totals", "outputs"):
            aggregation.build(
                t_env,
                {"filtered_events": "filtered_events",
                 "filtered_activations": "filtered_activations"},
                sink, plan, cfg.max_days, cfg.settings.stream.series_flush_ms,
            )  # fmt: skip
            outputs = ["totals", "series"]
            if stage == "outputs":
                outputs += ["progress_events", "progress_activations", "corrupt_events",
                            "corrupt_activations", "event_types"]  # fmt: skip
        for name in outputs:
            _blackhole(t_env, statements, name)
        statements.attach_as_datastream()

    return build


def run_stage(home: Path, stage: str) -> float:
    """Seconds of one cut replay in this process (from submission to the end)."""
    from streaming import pipeline
    from streaming.runner import Runner
    from udf.home import Home
    from udf.settings import load_settings

    pipeline.build = cut_build(stage)
    h = Home.resolve(home)
    report = Runner(h, load_settings(h), "replay").execute(fresh=True)
    if report["status"] != "FINISHED":
        raise SystemExit(f"stage {stage}: {report['status']}")
    return float(report["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000, help="also run with a quarter")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--root", help="keep the prepared archives here (reused if there)")
    parser.add_argument("--run", nargs=2, metavar=("HOME", "STAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps({"seconds": run_stage(Path(args.run[0]), args.run[1])}))
        return
    from benchmarks.bench_stream import prepare

    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stages {sorted(unknown)}: choose from {STAGES}")
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="bench-stages-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("UDF_")}
    try:
        sizes = {}
        for n in (args.events // 4, args.events):
            done = root / str(n) / "events.txt"
            if not done.exists():
                home, events, _ = prepare(root / str(n), n)
                done.write_text(str(events))
            sizes[n] = (root / str(n) / "home", int(done.read_text()))
        print(f"load average at start {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("| stage | small s | large s | marginal events/s |\n|---|---|---|---|")
        for stage in stages:
            times = []
            for home, _ in sizes.values():
                env["UDF_HOME"] = str(home)
                out = subprocess.run([sys.executable, __file__, "--run", str(home), stage],
                                     env=env, capture_output=True, text=True)  # fmt: skip
                if out.returncode:
                    raise SystemExit(f"stage {stage} failed:\n{out.stdout}\n{out.stderr[-4000:]}")
                times.append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
            (_, e1), (_, e2) = sizes.values()
            rate = (e2 - e1) / (times[1] - times[0]) if times[1] > times[0] else float("inf")
            print(f"| {stage} | {times[0]:.1f} | {times[1]:.1f} | {rate:,.0f} |", flush=True)
        print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
