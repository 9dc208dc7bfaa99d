"""Issue 16's acceptance: batch on a real Spark cluster gives the rows of ``local[*]``.

The same home (a small generated workload with duplicates, spammers, late and corrupt
records, segments, a ratio, a sum, CUPED, custom SQL and a custom Python function whose
Python UDF only the driver's ``PYTHONPATH`` can import) is computed by the real command line,
``udf compute`` of both metric types, in a subprocess (one Spark application), three times,
selected by the environment alone:

- ``local[*]`` (no setting);
- a standalone cluster, a master and two one-core workers, each its own JVM
  (``UDF_SPARK_MASTER=spark://...``; fixture ``spark_standalone``);
- a Spark Connect server (``UDF_SPARK_REMOTE=sc://...``; fixture ``spark_connect``).

Each engine's rows must equal the DuckDB oracle's (``tests/oracle``), the Python function's
rows its SQL twin's, and the clusters' rows the ``local[*]`` ones.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from oracle.compare import differences, report
from oracle.duckdb_metrics import DAY_MS, Catalog, Oracle, read_ramps_csv

from udf.config.catalog import CatalogFile
from udf.home import Home

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPAM_CAP, WINDOW_DAYS = 20, 3
DATES = (date(2026, 1, 4),)  # one date: the engines, not the slices, are under test here
METRIC_TYPES = ("aggregated", "custom")
ENGINES = ("local", "standalone", "connect")
GENERATE = (
    "--events", "20000", "--users", "1500", "--experiments", "4", "--days", "6",
    "--corrupt-share", "0.01", "--duplicate-share", "0.02", "--late-share", "0.03",
    "--spammers", "2", "--spam-cap", str(SPAM_CAP), "--window-days", str(WINDOW_DAYS),
    "--seed", "16",
)  # fmt: skip
CODE = Path(__file__).resolve().parents[2] / "data" / "cluster_code"  # on PYTHONPATH only
SQL_TWIN = (
    "SELECT experiment, `group`, period_start, user_id, COUNT(DISTINCT event_type) AS value "
    "FROM counted_events GROUP BY 1, 2, 3, 4"
)
FUNCTION = ("event_kinds_py", "cluster_metrics.kinds:event_kinds")  # the twin in Python


def catalog_yaml(experiments: list[str], *, function: bool) -> dict[str, Any]:
    """Counts by segment, a ratio, a sum (CUPED in one experiment) and custom metrics."""
    metrics: list[dict[str, Any]] = [
        {"name": "clicks_by_country", "type": "aggregated", "event_type": "click",
         "segments": ["country"]},
        {"name": "ctr", "type": "aggregated",
         "ratio": {"numerator": {"event_type": "click"},
                   "denominator": {"event_type": "impression"}}},
        {"name": "latency_total", "type": "aggregated", "event_type": "latency",
         "statistic": "sum"},
        {"name": "event_kinds", "type": "custom", "sql": SQL_TWIN},
    ]  # fmt: skip
    if function:
        metrics.append({"name": FUNCTION[0], "type": "custom", "function": FUNCTION[1]})
    names = [m["name"] for m in metrics]
    return {
        "segments": [{"name": "country", "field": "country"}],
        "metrics": metrics,
        "experiments": [
            {"experiment": e, "metrics": names}
            | ({"analysis": {"cuped": {"pre_days": 1}}} if i == 0 else {})
            for i, e in enumerate(experiments)
        ],
    }


@dataclass
class Workload:
    home: Home
    oracle: Oracle
    folder: Path
    rows: dict[str, list[Any]] = field(default_factory=dict)  # engine -> stored ResultRows
    seconds: dict[str, float] = field(default_factory=dict)  # engine -> udf compute wall time


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    command = [str(Path(sys.executable).with_name("udf")), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    root = tmp_path_factory.mktemp("clusters")
    home = Home.resolve(root / "home").ensure()
    h = ("--home", str(home.root))
    out = root / "workload"
    cli("generate", "--out", str(out), *GENERATE)
    for topic in ("activations", "events"):
        cli(
            *h, "data", "import", "--topic", topic, *sorted(map(str, (out / topic).glob("*.jsonl")))
        )
    cli(*h, "ramps", "import", str(out / "ramps.csv"))
    (home.root / "settings.yaml").write_text(yaml.safe_dump({
        "window_days": WINDOW_DAYS, "spam_cap": SPAM_CAP,
        "spark": {"conf": {"spark.sql.shuffle.partitions": "4", "spark.executor.memory": "512m"}},
    }))  # fmt: skip
    experiments = [
        e["experiment"] for e in json.loads((out / "manifest.json").read_text())["experiments"]
    ]
    (root / "catalog.yaml").write_text(yaml.safe_dump(catalog_yaml(experiments, function=True)))
    cli(*h, "config", "load", str(root / "catalog.yaml"), env=_env(home, {}))
    oracle = Oracle(
        home.archive, read_ramps_csv(out / "ramps.csv"),
        Catalog.from_files([CatalogFile.model_validate(catalog_yaml(experiments, function=False))]),
        window_ms=WINDOW_DAYS * DAY_MS, spam_cap=SPAM_CAP,
    )  # fmt: skip
    yield Workload(home, oracle, root)
    oracle.con.close()


def _env(home: Home, selection: dict[str, str]) -> dict[str, str]:
    """The test's environment without platform settings, the home, the user's code on the
    driver's PYTHONPATH, and ``selection`` (the one setting that picks the engine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UDF_", "SPARK_", "PYSPARK_"))}
    return env | {"UDF_HOME": str(home.root), "PYTHONPATH": str(CODE)} | selection


def computed(workload: Workload, engine: str, request: pytest.FixtureRequest) -> list[Any]:
    """``udf compute`` of every metric type and date on ``engine``; the rows it stored."""
    if engine not in workload.rows:
        from results.stores import open_store
        from udf.settings import load_settings

        selection = {}
        if engine == "standalone":
            selection = {"UDF_SPARK_MASTER": request.getfixturevalue("spark_standalone").url}
        elif engine == "connect":
            selection = {"UDF_SPARK_REMOTE": request.getfixturevalue("spark_connect").url}
        started = time.monotonic()
        types = [arg for t in METRIC_TYPES for arg in ("--metric-type", t)]  # one application
        cli("compute", *types, "--from", DATES[0].isoformat(), "--through", DATES[-1].isoformat(),
            env=_env(workload.home, selection))  # fmt: skip
        workload.seconds[engine] = time.monotonic() - started
        with open_store(workload.home, load_settings(workload.home, {})) as store:
            workload.rows[engine] = [
                r for t in METRIC_TYPES
                for r in store.read(source="batch", metric_type=t, date_from=DATES[0],
                                    date_to=DATES[-1])
            ]  # fmt: skip
    return workload.rows[engine]


@pytest.mark.parametrize("engine", ENGINES)
def test_udf_compute_rows_equal_the_oracle(
    workload: Workload, engine: str, request: pytest.FixtureRequest
) -> None:
    rows = computed(workload, engine, request)
    function_rows = [r for r in rows if r.metric == FUNCTION[0]]
    problems = []
    for metric_type in METRIC_TYPES:
        for day in DATES:
            expected = workload.oracle.rows(metric_type, day)
            assert expected, (metric_type, day)
            mine = [r for r in rows if (r.metric_type, r.date) == (metric_type, day.isoformat())]
            problems += differences(expected, [r for r in mine if r.metric != FUNCTION[0]])
            if metric_type == "custom":  # the Python function's rows are its SQL twin's
                twin = [
                    e | {"metric": FUNCTION[0]} for e in expected if e["metric"] == "event_kinds"
                ]
                assert twin
                problems += differences(
                    twin, [r for r in function_rows if r.date == day.isoformat()]
                )
    assert not problems, f"{engine}: " + report(problems)
    assert any(r.cuped_p_value is not None for r in rows)  # CUPED ran
    assert any(r.segment for r in rows)  # and segments


@pytest.mark.parametrize("engine", ENGINES[1:])
def test_cluster_rows_equal_local_rows(
    workload: Workload, engine: str, request: pytest.FixtureRequest
) -> None:
    local = [r.to_dict() for r in computed(workload, "local", request)]
    rows = computed(workload, engine, request)
    assert len(rows) == len(local) > 0
    problems = differences(local, rows)
    assert not problems, f"{engine} vs local[*]: " + report(problems)


def test_the_standalone_cluster_ran_it_on_both_workers(
    workload: Workload, request: pytest.FixtureRequest
) -> None:
    """Each worker ran executors of the command's applications, and the user's package was
    shipped to them (the workers never had it on a path)."""
    computed(workload, "standalone", request)
    cluster = request.getfixturevalue("spark_standalone")
    workers = sorted(d for d in cluster.folder.glob("worker-*") if d.is_dir())
    assert len(workers) == 2
    for worker in workers:
        executors = [d for d in worker.glob("app-*/*") if d.is_dir()]
        assert executors, f"{worker.name} ran no executor"
        logs = " ".join((d / "stderr").read_text(errors="replace") for d in executors)
        assert "Finished task" in logs, worker.name
    assert list(cluster.folder.glob("worker-*/app-*/*/cluster_metrics.zip"))
    print(f"udf compute wall times (s): {workload.seconds}")
