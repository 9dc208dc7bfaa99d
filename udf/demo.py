"""``make demo``: the whole platform once on the embedded defaults, one visible command at a time.

Generates a small deterministic workload, imports it into the archive and the metadata
store, loads the shipped metric catalog, declares the workload's days complete, then runs
the aggregated pipeline through Airflow: ``airflow dags test`` runs the factory's
``udf_range_backfill`` DAG (plan, one mapped ``compute_batch`` task per batch, notify) on an
Airflow database in the home (SQLite), over every experiment's range up to the last sealed
day. Then the streaming replay computes the same metrics on Flink (``udf stream replay``: a
mini-cluster inside the command's process), ``udf validate`` checks the stream's rows of the
last day against the batch's, and the demo ends with ``udf status``, a few results and a
summary table of every experiment's lifts and p-values.

Running it again changes nothing: the generator writes the same bytes, the importer
recognises files it has already imported, the seal markers do not move, and the pipeline
finds every metric-day done (its plan makes no batch).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from udf.home import Home

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "dags" / "configs" / "catalog"
BIN = Path(sys.executable).parent


def last_day(home: Home) -> date:
    """The workload's last day of event time (its manifest's start plus days)."""
    manifest = json.loads((home.root / "workload" / "manifest.json").read_text())
    params = manifest["parameters"]
    return date.fromisoformat(params["start"]) + timedelta(days=int(params["days"]) - 1)


def steps(home: Home) -> list[list[str]]:
    workload = home.root / "workload"
    events = sorted(str(p) for p in (workload / "events").glob("*.jsonl"))
    activations = sorted(str(p) for p in (workload / "activations").glob("*.jsonl"))
    through = last_day(home).isoformat()
    return [
        ["data", "import", "--topic", "events", *events],
        ["data", "import", "--topic", "activations", *activations],
        ["ramps", "import", str(workload / "ramps.csv")],
        ["config", "load", str(CATALOG)],
        ["data", "info"],
        ["experiments", "list"],
        ["data", "seal", "--topic", "events", "--through", through],
        ["data", "seal", "--topic", "activations", "--through", through],
    ]


def report_steps(home: Home) -> list[list[str]]:
    day = last_day(home).isoformat()
    return [
        ["status", "--metric-type", "aggregated", "--date", day],
        ["results", "show", "--metric-type", "aggregated", "--date-from", day, "--date-to", day,
         "--metric", "click", "--limit", "6"],
    ]  # fmt: skip


def airflow_env(home: Home) -> dict[str, str]:
    """Airflow on its embedded defaults, kept inside the platform home."""
    return {
        **os.environ,
        "UDF_HOME": str(home.root),
        "AIRFLOW_HOME": str(home.root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


def run_pipeline(home: Home) -> None:
    """``airflow db migrate`` then ``airflow dags test udf_range_backfill`` (logs to a file)."""
    env = airflow_env(home)
    log = home.root / "airflow" / "dags-test.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    conf = json.dumps({"metric_type": "aggregated", "to_date": last_day(home).isoformat()})
    with log.open("w") as out:
        for args in (["db", "migrate"], ["dags", "test", "udf_range_backfill", "--conf", conf]):
            print(f"\n$ airflow {shlex.join(args)}", flush=True)
            subprocess.run([str(BIN / "airflow"), *args], env=env, stdout=out,
                           stderr=subprocess.STDOUT, check=True)  # fmt: skip
    print(summary(log.read_text()) + f"\n(Airflow's log: {log})", flush=True)


def summary(log: str) -> str:
    """The DAG run in one line, from ``dags test``'s log: tasks run and the run's state."""
    ended = re.findall(r"\[DAG TEST\] end task task_id=(\w+) map_index=(-?\d+)", log)
    batches = sum(1 for task, _ in ended if task == "compute_batch")
    state = re.findall(r"DagRun Finished: .*?state=(\w+)", log)
    planned = re.findall(r"udf_range_backfill aggregated (\S+)\.\.(\S+) scope", log)
    days = f" over {planned[-1][0]} .. {planned[-1][1]}" if planned else ""
    return (
        f"udf_range_backfill{days}: plan, {batches} compute_batch task(s) (mapped), notify: "
        f"{state[-1] if state else 'unknown'}"
    )


def stream_replay() -> None:
    """The streaming replay, submitted to a local Flink session cluster (``udf flink up``)
    that is stopped afterwards. Where the cluster cannot start (its REST port taken, say),
    the replay runs on a Flink mini-cluster inside the command's own process instead."""
    try:
        run(["flink", "up"])
    except subprocess.CalledProcessError:
        print("the Flink session cluster did not start (above): replaying in-process instead")
        run(["stream", "replay"])
        return
    try:
        run(["stream", "replay", "--cluster"])
    finally:
        print("\n$ udf flink down", flush=True)
        subprocess.run([str(BIN / "udf"), "flink", "down"], check=False)


def validate_steps(home: Home) -> list[list[str]]:
    """The validation, against the batch rows the DAG just wrote (``--no-recompute``: the
    DAG run computed them moments ago), of the day with the most experiments (every ramp
    scenario) and of the last day."""
    days = sorted({busiest_day(home), last_day(home).isoformat()})
    return [["validate", "--date", day, "--no-recompute"] for day in days]


def _rows(home: Home, source: str) -> list:
    from results.stores import open_store
    from udf.settings import load_settings

    with open_store(home, load_settings(home)) as store:
        return store.read(source=source, metric_type="aggregated")


def busiest_day(home: Home) -> str:
    """The (latest) date whose stream rows cover the most experiments."""
    seen: dict[str, set[str]] = {}
    for r in _rows(home, "stream"):
        seen.setdefault(r.date, set()).add(r.experiment)
    return max(seen, key=lambda d: (len(seen[d]), d)) if seen else last_day(home).isoformat()


def lift_summary(home: Home) -> list[dict[str, object]]:
    """Every treatment's relative lift and p-value (whole groups, batch) on its experiment's
    last date with results: the end of its last aggregation period, or the data's end."""
    rows = [r for r in _rows(home, "batch") if r.segment == ""]
    latest: dict[str, str] = {}
    for r in rows:
        latest[r.experiment] = max(latest.get(r.experiment, ""), r.date)
    return [
        {
            "experiment": r.experiment,
            "period": _day(r.period_start),
            "through": r.date,
            "group": r.group,
            "metric": r.metric,
            "users": r.exposed,
            "lift": f"{r.lift_rel:+.2%}",
            "p-value": r.p_value,
            "significant": "yes" if r.p_value is not None and r.p_value < 0.05 else "",
        }
        for r in rows
        if r.date == latest[r.experiment] and r.lift_rel is not None
    ]


def _day(ms: int) -> str:
    return (date(1970, 1, 1) + timedelta(milliseconds=ms)).isoformat()


def print_summary(home: Home) -> None:
    from udf.cli.output import emit

    print("\nlifts and p-values (batch; the stream's rows equal them):", flush=True)
    emit(lift_summary(home), "table", title="summary")


def run(args: list[str]) -> None:
    udf = [str(BIN / "udf")]
    print(f"\n$ udf {_shown(args)}", flush=True)
    subprocess.run(udf + args, check=True)


def _shown(args: list[str]) -> str:
    """The command as a person would type it: many files of one folder become a glob."""
    files = [a for a in args if a.endswith(".jsonl")]
    if len(files) > 1 and len({Path(f).parent for f in files}) == 1:
        rest = [a for a in args if a not in files]
        return shlex.join(rest) + f" {Path(files[0]).parent}/*.jsonl"
    return shlex.join(args)


def main() -> int:
    home = Home.resolve().ensure()
    print(f"platform home: {home.root}")
    try:
        run(
            ["generate", "--out", str(home.root / "workload"), "--force", "--corrupt-share", "0.01"]
        )
        for args in steps(home):
            run(args)
        run_pipeline(home)
        stream_replay()
        for args in validate_steps(home):
            run(args)
        for args in report_steps(home):
            run(args)
        print_summary(home)
    except subprocess.CalledProcessError as exc:
        print(f"demo step failed with exit code {exc.returncode}", file=sys.stderr)
        return exc.returncode
    print(
        "\ndemo done: run it again and every import is recognised as already done, the "
        "pipeline finds every metric-day computed, and the replay writes the same rows."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
