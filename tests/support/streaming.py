"""Helpers of the streaming tests: the workload, its batch rows, running ``udf stream``.

The workload has every kind of dirt the contract names: duplicate copies (some arriving
hours later), spammers over a small cap, late records (1 to 48 h), 1% corrupt lines, segment
fields, and the three ramp scenarios (a single ramp, re-ramps inside the window, re-ramps
after it). The batch rows come from ``metric_types.compute.compute`` (Spark) over every date
of the data, computed once (the ``prepared`` fixture); each test copies the prepared home
and runs the stream there, in a process of its own.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from results.schema import ResultRow
from tests.support.kafka_brokers import Broker
from udf.cli import main
from udf.home import Home

SPAM_CAP = 15
WINDOW_DAYS = 3
DAYS = 7
START = date(2026, 1, 1)
GENERATE = (
    "--events", "24000", "--users", "2000", "--experiments", "6", "--days", str(DAYS),
    "--start", START.isoformat(), "--corrupt-share", "0.01", "--duplicate-share", "0.03",
    "--late-share", "0.03", "--spammers", "3", "--spam-cap", str(SPAM_CAP),
    "--window-days", str(WINDOW_DAYS), "--cross-group-share", "0.05", "--seed", "11",
)  # fmt: skip
SETTINGS = {
    "window_days": WINDOW_DAYS,
    "spam_cap": SPAM_CAP,
    "spark": {"conf": {"spark.sql.shuffle.partitions": "4"}},
    "stream": {
        "checkpoint_interval_seconds": 3, "flush_interval_seconds": 1, "restart_attempts": 0,
        "mini_batch_latency_ms": 500, "replay_mini_batch_latency_ms": 1000,
        "series_flush_seconds": 2, "feed_interval_seconds": 1, "monitor_seconds": 1,
    },
}  # fmt: skip
UDF = str(Path(sys.executable).parent / "udf")
JOBS_APART = ("filter_events", "filter_activations", "aggregation")  # with stream.topics
INT_FIELDS = ("period_end", "exposed", "volume", "propensity", "n", "multiple_groups")
FLOAT_FIELDS = (
    "sum", "sum_sq", "den_sum", "den_sum_sq", "sum_xy", "lift_abs", "lift_rel", "ci_low",
    "ci_high", "rel_ci_low", "rel_ci_high", "p_value", "p_value_adjusted", "srm_p_value",
    "pre_sum", "pre_sum_sq", "pre_sum_xy", "cuped_lift_abs", "cuped_lift_rel", "cuped_ci_low",
    "cuped_ci_high", "cuped_rel_ci_low", "cuped_rel_ci_high", "cuped_p_value",
    "variance_reduction",
)  # fmt: skip


def udf(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def catalog_yaml(manifest: dict) -> dict:
    """Aggregated metrics of every kind, two experiments with segments and corrections (one
    with CUPED), and two that leave out users in two groups (the generator puts some in the first experiment
    of each scenario: ``--cross-group-share``)."""
    by: dict[str, list[str]] = {}
    for e in manifest["experiments"]:
        by.setdefault(e["scenario"], []).append(e["experiment"])
    everything = ["clicks_by_country", "latency_total", "ctr", "latency_per_impression"]
    return {
        "segments": [{"name": "country", "field": "country"},
                     {"name": "platform", "field": "platform"}],
        "metrics": [
            {"name": "clicks_by_country", "type": "aggregated", "event_type": "click",
             "segments": ["country"]},
            {"name": "latency_total", "type": "aggregated", "event_type": "latency",
             "statistic": "sum"},
            {"name": "ctr", "type": "aggregated",
             "ratio": {"numerator": {"event_type": "click"},
                       "denominator": {"event_type": "impression"}}},
            {"name": "latency_per_impression", "type": "aggregated",
             "ratio": {"numerator": {"event_type": "latency", "statistic": "sum"},
                       "denominator": {"event_type": "impression"}}},
            {"name": "search_kinds", "type": "custom",
             "sql": "SELECT experiment, `group`, period_start, user_id, COUNT(*) AS value "
                    "FROM counted_events GROUP BY 1, 2, 3, 4"},
        ],
        "experiments": [
            {"experiment": by["reramp_after"][0], "metrics": [*everything, "search_kinds"],
             "segments": ["platform"],
             "analysis": {"correction": "holm", "multiple_groups": "exclude"}},
            {"experiment": by["reramp_in"][0], "metrics": everything,
             "analysis": {"correction": "bh", "correct_over": ["metric", "group", "segment"],
                          "alpha": 0.1, "cuped": {"pre_days": 1}}},
            {"experiment": by["single"][0], "metrics": ["latency_total", "ctr"],
             "analysis": {"multiple_groups": "exclude"}},
        ],
    }  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    root: Path
    template: Path  # a home with the archive, ramps, catalog, settings and batch rows
    workload: Path
    manifest: dict
    dates: tuple[date, ...]

    def home(self, name: str) -> Home:
        """A copy of the prepared home for one test."""
        target = self.root / name
        shutil.copytree(self.template, target)
        return Home.resolve(target)


@dataclass(frozen=True)
class Replayed:
    prepared: Prepared
    home: Home  # the prepared home after one whole replay
    output: str  # the replay's output

    def copy(self, name: str) -> Home:
        """A copy of the replayed home for a test that changes it."""
        target = self.prepared.root / name
        shutil.copytree(self.home.root, target)
        return Home.resolve(target)


def prepare_home(home: Home, workload: Path, manifest: dict, *, data: bool = True) -> None:
    """Ramps, settings and catalog (and, with ``data``, the whole workload) into ``home``."""
    h = ("--home", str(home.root))
    if data:
        for topic in ("activations", "events"):
            files = sorted(str(p) for p in (workload / topic).glob("*.jsonl"))
            udf(*h, "data", "import", "--topic", topic, *files)
    udf(*h, "ramps", "import", str(uneven_ramps(workload / "ramps.csv", home.root.parent)))
    (home.root / "settings.yaml").write_text(yaml.safe_dump(SETTINGS))
    catalog = home.root.parent / f"{home.root.name}-catalog"
    catalog.mkdir()
    (catalog / "catalog.yaml").write_text(yaml.safe_dump(catalog_yaml(manifest), sort_keys=False))
    udf(*h, "config", "load", str(catalog))


def uneven_ramps(ramps: Path, folder: Path) -> Path:
    """A copy of the workload's ramps in which each re-ramp of an experiment's last group
    doubles its allocation where the others' grow less: the SRM check's expected counts then
    depend on the allocation interval of each user's exposure (the generator ramps all
    groups of an experiment alike)."""
    rows = list(csv.DictReader(ramps.read_text().splitlines()))
    last = {r["experiment"]: r["group"] for r in rows}  # (groups are listed in order)
    seen: set[tuple[str, str]] = set()
    for r in rows:
        key = (r["experiment"], r["group"])
        if key in seen and last[r["experiment"]] == r["group"]:
            r["allocation"] = str(min(100.0, 2 * float(r["allocation"])))
        seen.add(key)
    out = folder / f"{ramps.stem}-uneven.csv"
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def compute_batch(home: Home, dates: Sequence[date]) -> None:
    from metric_types.compute import compute

    compute(home, "aggregated", list(dates))


# -- running the command line in its own process (its own JVM) --------------------------------


def stream_env(home: Home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UDF_")}
    env["UDF_HOME"] = str(home.root)
    return env


def start_stream(
    home: Home, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``udf stream ARGS`` in a new process group (the JVM it starts is in the group too), with
    ``env`` added to its environment."""
    log = (home.root.parent / f"{home.root.name}-{args[0]}.log").open("a")
    return subprocess.Popen(
        [UDF, "stream", *args], env=stream_env(home) | (env or {}), stdout=log,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def output_of(home: Home, command: str) -> str:
    return (home.root.parent / f"{home.root.name}-{command}.log").read_text()


def finish(process: subprocess.Popen[str], home: Home, command: str, timeout: float) -> str:
    """Wait for ``process``; its output. A timeout kills its whole group and fails."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        pytest.fail(f"udf stream {command} did not end in {timeout} s:\n{output_of(home, command)}")
    out = output_of(home, command)
    assert process.returncode == 0, out
    return out


def json_report(out: str) -> dict[str, Any]:
    """The one report ``udf stream ... --format json`` printed: the JSON array that makes the
    output's last lines (log lines, on stderr, may come before it)."""
    start = 0 if out.startswith("[") else out.index("\n[") + 1
    [report] = json.loads(out[start:])
    return report


def cancel_job(result: Any) -> None:
    """Cancel the job of a ``TableResult`` if it still runs. Closing a ``collect()`` iterator
    cancels the job already, and the local cluster of a finished job may be shut down by then
    (``IllegalStateException: MiniCluster is not yet running or has already been shut down``)."""
    try:
        result.get_job_client().cancel().result()
    except Exception as exc:
        gone = (
            "has already been shut down",
            "could not be found",
            "not running",
            "globally terminal",
        )
        if not any(phrase in str(exc) for phrase in gone):
            raise


def kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def wait_for(condition: Any, timeout: float, what: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"the process ended (exit {process.returncode}) before {what}")
        time.sleep(0.5)
    kill_group(process)
    pytest.fail(f"timed out waiting for {what}")


def progress(home: Home, mode: str) -> dict[str, Any]:
    from streaming.progress import read

    return read(home.root / "stream" / mode / "progress")


# -- comparing rows --------------------------------------------------------------------------


def rows_of(home: Home, source: str) -> dict[tuple, ResultRow]:
    from results.stores import open_store
    from udf.settings import load_settings

    with open_store(home, load_settings(home, {})) as store:
        rows = store.read(source=source, metric_type="aggregated")
    out = {}
    for row in rows:
        key = row.key()[1:]  # without the source
        assert key not in out, f"{source} row {key} twice"
        out[key] = row
    return out


def differences(batch: dict[tuple, ResultRow], stream: dict[tuple, ResultRow]) -> list[str]:
    """Every difference between the batch and the stream rows, one per line."""
    problems = [f"missing {k}" for k in sorted(batch.keys() - stream.keys())]
    problems += [f"unexpected {k}" for k in sorted(stream.keys() - batch.keys())]
    for k in sorted(batch.keys() & stream.keys()):
        b, s = batch[k], stream[k]
        diffs = [f"{f} {getattr(s, f)!r} != {getattr(b, f)!r}" for f in INT_FIELDS
                 if getattr(s, f) != getattr(b, f) or type(getattr(s, f)) is not int]  # fmt: skip
        for f in FLOAT_FIELDS:
            x, y = getattr(s, f), getattr(b, f)
            if (x is None) != (y is None) or (
                x is not None and x != y and not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
            ):
                diffs.append(f"{f} {x!r} != {y!r}")
        for f in ("status", "health"):
            if getattr(s, f) != getattr(b, f):
                diffs.append(f"{f} {getattr(s, f)!r} != {getattr(b, f)!r}")
        if diffs:
            problems.append(f"{k}: " + "; ".join(diffs))
    return problems


def assert_series_agrees_with_rows(home: Home, rows: Sequence[ResultRow]) -> None:
    """The 15-minute series in ``home``'s results store is cumulative (never decreasing within
    a period), and through a date's end holds a default metric's numbers of that date: the
    metric of an event type counts the group's exposed users, their counted events of the
    type and the users with one, as the series' last point before the date ends does (with
    rows equal to batch's, the series is exact too). The series counts users in two groups in
    each group they saw (docs/streaming.md), so rows of experiments that leave such users out
    are not compared."""
    from metadata.periods import DAY_MS
    from metadata.repository import MetadataStore
    from streaming.series import SeriesStore
    from udf.settings import load_settings

    with MetadataStore.for_home(home) as metadata:
        excluding = {e.name for e in metadata.experiments()
                     if (e.analysis or {}).get("multiple_groups") == "exclude"}  # fmt: skip

    store = SeriesStore(load_settings(home, {}).results_url(home))
    points = store.read()
    store.close()
    assert points
    series: dict[tuple, list[tuple[int, tuple[int, int, int]]]] = {}
    for p in points:  # ordered by experiment, group, period, event type, bucket
        key = (p["experiment"], p["group"], p["period_start"], p["event_type"])
        numbers = (p["exposed"], p["volume"], p["propensity"])
        last = series[key][-1][1] if key in series else (0, 0, 0)
        assert all(a >= b for a, b in zip(numbers, last, strict=True)), key
        series.setdefault(key, []).append((p["bucket_start"], numbers))
    types = {key[3] for key in series}
    checked = 0
    for r in rows:
        if r.segment != "" or r.metric not in types or r.experiment in excluding:
            continue  # the series is per event type: default metrics, whole groups
        day_end = (date.fromisoformat(r.date) - date(1970, 1, 1)).days * DAY_MS + DAY_MS
        before = [n for start, n in series.get((r.experiment, r.group, r.period_start, r.metric), [])
                  if start < day_end]  # fmt: skip
        if before:
            assert (r.exposed, r.volume, r.propensity) == before[-1], r.key()
            checked += r.volume > 0
        else:  # no event of the type yet in this group
            assert (r.volume, r.propensity) == (0, 0), r.key()
    assert checked > 100


def assert_stream_equals_batch(
    home: Home, dates: Sequence[date], *, batch_home: Home | None = None
) -> dict[tuple, ResultRow]:
    """``home``'s stream rows equal the batch rows of ``batch_home`` (default ``home``): a home
    whose archive holds the same records may lend its batch rows instead of computing them."""
    batch = rows_of(batch_home or home, "batch")
    stream = rows_of(home, "stream")
    assert batch, "the batch computed rows"
    assert {r.date for r in batch.values()} == {d.isoformat() for d in dates}
    problems = differences(batch, stream)
    head = "\n".join(problems[:40])
    assert not problems, f"{len(problems)} difference(s):\n{head}"
    return stream


def apart_home(
    prepared: Prepared, name: str, broker: Broker, connector_jars: Path, **stream: Any
) -> Home:
    """A copy of the prepared home whose jobs run apart, joined by topics on ``broker``."""
    home = prepared.home(name)
    (home.root / "cache").symlink_to(connector_jars)  # the connector's jars, fetched once
    settings = yaml.safe_load((home.root / "settings.yaml").read_text())
    settings["stream"] |= stream
    settings["stream"]["topics"] = topics_settings(broker, name)
    (home.root / "settings.yaml").write_text(yaml.safe_dump(settings))
    return home


def topics_settings(broker: Broker, name: str) -> dict[str, Any]:
    """``stream.topics`` for a test's topics on ``broker``, one writer per topic (tansu can
    lose records of a partition two producers append to: tests/support/kafka_brokers.py)."""
    return {
        "bootstrap": broker.bootstrap,
        "prefix": f"test-{name}",
        "replication_factor": 1,
        "single_writer": True,
    }


def topic_names(broker: Broker, prefix: str) -> set[str]:
    from confluent_kafka.admin import AdminClient

    listed = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    return {t for t in listed.topics if t.startswith(prefix)}
