"""Benchmark parsing the UDF DAG files with a 10,000-metric, 1,000-experiment config.

    .venv/bin/python benchmarks/bench_dag_parse.py [--metrics 10000] [--experiments 1000]
        [--repeat 5] [--budget 2.0] [--no-catalog-baselines] [--tmp DIR]

Airflow's dag processor parses each DAG file in a fresh child of a process that already
imported Airflow, and gives up on a file after ``[core] dagbag_import_timeout`` (30 s).
This benchmark does the same: for each repetition and each file of ``dags/`` a fresh
interpreter imports Airflow (untimed), then times ``DagBag`` over that file, with ``$UDF_PIPELINES_DIR``
pointing at a generated config tree whose ``catalog/`` holds the metrics and experiment
selections and whose ``pipelines/`` holds the shipped pipeline files. It prints each file's
median (what the processor compares with its timeout) and the median of their sum (the
figure held against ``--budget``) beside baselines measured in the same run:

- an empty one-task DAG file parsed the same way (Airflow's own cost per file);
- reading the catalog's YAML with libyaml's C loader alone, and validating it strictly
  with the platform's loader (``udf config validate``): what parsing would cost if the DAG
  files read the catalog, which they do not (the catalog is read at run time from the
  metadata store).

Exit status 1 when the median is over ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
TYPES = ("aggregated", "calendar_day", "days_in", "custom")
EMPTY_DAG = '''"""A one-task Airflow DAG: the baseline of what parsing any DAG file costs."""
from datetime import datetime, timezone
from airflow.sdk import dag, task

@dag(schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc))
def empty():
    @task
    def one() -> None:
        return None
    one()

empty()
'''
CHILD = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag  # the dag processor has Airflow loaded
import airflow.sdk  # noqa: F401
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=True)  # one file, as a processor child
total = time.perf_counter() - started
print(json.dumps({
    "total": total,
    "files": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
    "dags": len(bag.dags),
    "errors": bag.import_errors,
    "heavy": [m for m in ("pyspark", "pyflink", "scipy", "pandas") if m in sys.modules],
}))
"""


def write_configs(root: Path, metrics: int, experiments: int, files: int = 100) -> int:
    """The shipped pipelines plus a catalog of ``metrics`` metrics and ``experiments`` selections."""
    shutil.copytree(DAGS / "configs" / "pipelines", root / "pipelines")
    catalog = root / "catalog"
    catalog.mkdir(parents=True)
    per_file = -(-metrics // files)
    per_experiment = max(1, metrics // experiments)
    size = 0
    for f in range(files):
        lines = ["metrics:"]
        for i in range(f * per_file, min(metrics, (f + 1) * per_file)):
            kind = TYPES[i % len(TYPES)]
            lines += [f"  - name: m_{i:05d}", f"    type: {kind}"]
            if kind == "custom":
                lines += [
                    "    sql: >-",
                    "      SELECT experiment, `group`, period_start, user_id, COUNT(*) AS value",
                    f"      FROM counted_events WHERE event_type = 'e{i % 20}'",
                    "      GROUP BY experiment, `group`, period_start, user_id",
                ]
            else:
                lines.append(f"    event_type: e{i % 20}")
            if kind == "days_in":
                lines.append("    days: [1, 2, 3]")
            lines += [f"    owners: [owner{i % 50}@example.com]", "    sla_hours: 30"]
        chosen = [x for x in range(experiments) if x % files == f]
        if chosen:
            lines.append("experiments:")
        for x in chosen:
            names = [f"m_{(x * per_experiment + j) % metrics:05d}" for j in range(per_experiment)]
            lines += [f"  - experiment: exp_{x:04d}", f"    metrics: [{', '.join(names)}]"]
        text = "\n".join(lines) + "\n"
        (catalog / f"catalog_{f:03d}.yaml").write_text(text)
        size += len(text)
    return size


def parse_once(folder: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"parsing {folder} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def catalog_baselines(catalog: Path) -> tuple[float, float]:
    import yaml

    started = time.perf_counter()
    for path in sorted(catalog.glob("*.yaml")):
        yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    c_yaml = time.perf_counter() - started
    from udf.config.loader import load_catalog

    started = time.perf_counter()
    loaded = load_catalog([catalog])
    strict = time.perf_counter() - started
    if loaded.issues:
        raise SystemExit(f"the generated catalog is invalid: {loaded.issues[:3]}")
    return c_yaml, strict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=10_000)
    parser.add_argument("--experiments", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--no-catalog-baselines", action="store_true")
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="udf-bench-parse-", dir=args.tmp))
    try:
        size = write_configs(root / "configs", args.metrics, args.experiments)
        empty = root / "empty_dags"
        empty.mkdir()
        (empty / "empty_dag.py").write_text(EMPTY_DAG)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "UDF_PIPELINES_DIR": str(root / "configs" / "pipelines"),
            "UDF_HOME": str(root / "home"),
        }
        print(
            f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
        )
        print(
            f"config: {args.metrics:,} metrics in 100 catalog files, {args.experiments:,} "
            f"experiment selections ({size / 2**20:.1f} MiB), "
            f"{len(list((root / 'configs' / 'pipelines').glob('*.yaml')))} pipeline files"
        )
        files = sorted(p for p in DAGS.glob("*.py") if p.name != "__init__.py")
        ours: dict[str, list[dict]] = {f.name: [] for f in files}
        base = []
        for _ in range(args.repeat):  # interleaved, so load spikes hit every file alike
            for f in files:
                ours[f.name].append(parse_once(f, env))
            base.append(parse_once(empty / "empty_dag.py", env))
        for name, runs in ours.items():
            if runs[-1]["errors"] or runs[-1]["heavy"]:
                raise SystemExit(f"{name}: errors {runs[-1]['errors']}, heavy {runs[-1]['heavy']}")
        medians = {name: statistics.median(r["total"] for r in runs) for name, runs in ours.items()}
        sums = [sum(ours[n][i]["total"] for n in ours) for i in range(args.repeat)]
        median = statistics.median(sums)
        dags = sum(runs[-1]["dags"] for runs in ours.values())
        print(
            f"parse each DAG file in a fresh interpreter (as the dag processor does), median of "
            f"{args.repeat}: "
            + ", ".join(f"{n} {d:.3f} s" for n, d in medians.items())
            + f"; all {len(files)} files ({dags} DAGs): {median:.3f} s "
            f"(min {min(sums):.3f}, max {max(sums):.3f})"
        )
        print(
            "baseline, an empty one-task DAG file parsed the same way: "
            f"{statistics.median(r['total'] for r in base):.3f} s"
        )
        if not args.no_catalog_baselines:
            c_yaml, strict = catalog_baselines(root / "configs" / "catalog")
            print(
                f"baseline, reading the catalog at parse time: libyaml alone {c_yaml:.2f} s, "
                f"strict validation (udf config validate) {strict:.2f} s"
            )
        verdict = "within" if median < args.budget else "OVER"
        print(f"budget {args.budget:g} s (Airflow's default import timeout: 30 s): {verdict}")
        return 0 if median < args.budget else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
