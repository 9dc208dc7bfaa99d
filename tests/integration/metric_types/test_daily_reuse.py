"""Issue 16's incremental daily cost: ``aggregated`` day by day from the previous day's state.

One generated workload with dirt (duplicates, spammers over a small cap, late and
out-of-order records, corrupt lines, segments, re-ramps) and a catalog of ``aggregated``
metrics of every kind (count with segments, sum, ratios, conversion windows, CUPED,
winsorized, a quantile), with one experiment leaving out users seen in two groups. Computed
one day per ``compute`` as a daily schedule runs it, with ``batch.reuse_days`` on, the rows
must equal the rows computed from the periods' start (reuse off; integers exactly, sums to
1e-12 relative: only the order of additions differs) and the DuckDB oracle's, each day
having started from the previous day's stored state (the logs say so). Then:

- a late activation imported into an earlier day makes every later state stale: the next
  run starts from the last state before it, and its rows equal the oracle's on the new data;
- a state whose stamp was never written (a write killed after the rows, before the stamp)
  is never read, nor is a torn stamp.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from oracle.compare import differences, report
from oracle.duckdb_metrics import DAY_MS, Catalog, Oracle, read_ramps_csv

from metric_types.base import Day
from udf.cli import main
from udf.config.catalog import CatalogFile
from udf.home import Home

pytestmark = pytest.mark.spark

SPAM_CAP = 20
WINDOW_DAYS = 5
DAYS = [date(2026, 1, 2) + timedelta(days=n) for n in range(5)]  # Jan 2 .. Jan 6
GENERATE = (
    "--events", "60000", "--users", "3000", "--experiments", "6", "--days", "8",
    "--corrupt-share", "0.01", "--duplicate-share", "0.02", "--late-share", "0.03",
    "--spammers", "3", "--spam-cap", str(SPAM_CAP), "--window-days", str(WINDOW_DAYS),
    "--seed", "11",
)  # fmt: skip
NOT_IN_ORACLE = {"latency_capped", "searches_median"}
ORACLE_METRICS = ["clicks_by_country", "latency_total", "ctr", "latency_per_impression",
                  "clicks_30h", "ctr_12h"]  # fmt: skip
METRICS: list[dict[str, Any]] = [
    {"name": "clicks_by_country", "type": "aggregated", "event_type": "click",
     "segments": ["country", "platform"]},
    {"name": "latency_total", "type": "aggregated", "event_type": "latency", "statistic": "sum"},
    {"name": "ctr", "type": "aggregated",
     "ratio": {"numerator": {"event_type": "click"}, "denominator": {"event_type": "impression"}}},
    {"name": "latency_per_impression", "type": "aggregated",
     "ratio": {"numerator": {"event_type": "latency", "statistic": "sum"},
               "denominator": {"event_type": "impression"}}},
    {"name": "clicks_30h", "type": "aggregated", "event_type": "click", "window_hours": 30,
     "segments": ["country"]},
    {"name": "ctr_12h", "type": "aggregated", "window_hours": 12.5,
     "ratio": {"numerator": {"event_type": "click"}, "denominator": {"event_type": "impression"}}},
    # not in the oracle: compared with the computation from the start only
    {"name": "latency_capped", "type": "aggregated", "event_type": "latency",
     "statistic": "sum", "winsorize": {"percentile": 95}},
    {"name": "searches_median", "type": "aggregated", "event_type": "search",
     "quantile": {"level": 0.5}},
]  # fmt: skip


def udf(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@dataclass
class Env:
    home: Home
    workload: Path
    manifest: dict[str, Any]
    catalog: dict[str, Any]

    def oracle(self) -> Oracle:
        """A new oracle over the archive as it is now (imports since are included)."""
        oracle_catalog = copy.deepcopy(self.catalog)
        oracle_catalog["metrics"] = [m for m in METRICS if m["name"] in ORACLE_METRICS]
        for e in oracle_catalog["experiments"]:
            e["metrics"] = [m for m in e["metrics"] if m in ORACLE_METRICS]
        return Oracle(
            self.home.archive, read_ramps_csv(self.workload / "ramps.csv"),
            Catalog.from_files([CatalogFile.model_validate(oracle_catalog)]),
            window_ms=WINDOW_DAYS * DAY_MS, spam_cap=SPAM_CAP,
        )  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("reuse")
    home = Home.resolve(root / "home").ensure()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UDF_HOME", str(home.root))
        for var in ("UDF_METADATA_URL", "UDF_SPAM_CAP", "UDF_WINDOW_DAYS", "UDF_RESULTS_URL",
                    "UDF_RESULTS_STORE", "UDF_BATCH_REUSE_DAYS"):  # fmt: skip
            mp.delenv(var, raising=False)
        out = root / "workload"
        udf("generate", "--out", str(out), *GENERATE)
        manifest = json.loads((out / "manifest.json").read_text())
        h = ("--home", str(home.root))
        for topic in ("activations", "events"):
            udf(
                *h,
                "data",
                "import",
                "--topic",
                topic,
                *sorted(str(p) for p in (out / topic).glob("*.jsonl")),
            )
        udf(*h, "ramps", "import", str(out / "ramps.csv"))
        (home.root / "settings.yaml").write_text(yaml.safe_dump({
            "window_days": WINDOW_DAYS, "spam_cap": SPAM_CAP,
            "spark": {"conf": {"spark.sql.shuffle.partitions": "4"}},
        }))  # fmt: skip
        names = [e["experiment"] for e in manifest["experiments"]]
        everything = [m["name"] for m in METRICS]
        catalog = {
            "segments": [{"name": "country", "field": "country"},
                         {"name": "platform", "field": "platform"}],
            "metrics": METRICS,
            "experiments": [
                {"experiment": names[0], "metrics": everything,
                 "analysis": {"cuped": {"pre_days": 2}}},
                {"experiment": names[1], "metrics": everything,
                 "analysis": {"multiple_groups": "exclude"}},
                *({"experiment": n, "metrics": everything} for n in names[2:]),
            ],
        }  # fmt: skip
        (root / "catalog").mkdir()
        (root / "catalog" / "reuse.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
        udf(*h, "config", "load", str(root / "catalog"))
        yield Env(home, out, manifest, catalog)


def settings_of(home: Home, reuse: bool) -> Any:
    from udf.settings import BatchSettings, load_settings

    settings = load_settings(home)
    return settings.model_copy(update={"batch": BatchSettings(reuse_days=reuse)})


def run(home: Home, days: list[date], reuse: bool) -> dict[date, list[Any]]:
    """Compute ``aggregated`` on ``days``, one ``compute`` per day; each day's stored rows."""
    from metric_types.compute import compute
    from results.stores import open_store

    settings = settings_of(home, reuse)
    rows = {}
    for day in days:
        compute(home, "aggregated", [day], settings=settings)
        with open_store(home, settings) as store:
            rows[day] = store.read(
                source="batch", metric_type="aggregated", date_from=day, date_to=day
            )
    return rows


def same_rows(a: list[Any], b: list[Any]) -> list[str]:
    """Differences between two engines' rows of one slice: integers and strings equal,
    floats equal to 1e-12 relative."""
    left = {r.key(): r.to_dict() for r in a}
    right = {r.key(): r.to_dict() for r in b}
    problems = [f"only in one: {k}" for k in sorted(left.keys() ^ right.keys())]
    for k in sorted(left.keys() & right.keys()):
        for f, x in left[k].items():
            y = right[k][f]
            if f == "computed_at":
                continue
            if isinstance(x, float) and isinstance(y, float):
                if not (x == y or math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12)):
                    problems.append(f"{k} {f}: {x!r} != {y!r}")
            elif x != y:
                problems.append(f"{k} {f}: {x!r} != {y!r}")
    return problems


def partial_events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [r.udf_fields for r in caplog.records if getattr(r, "udf_event", None) == event]


def oracle_slice(oracle: Oracle, day: date) -> list[dict[str, Any]]:
    return oracle.rows("aggregated", day)


def oracle_subset(rows: list[Any]) -> list[Any]:
    """The rows the oracle computes: all but the winsorized and quantile metrics."""
    return [r for r in rows if r.metric not in NOT_IN_ORACLE]


def test_each_day_starts_from_the_previous_day_and_rows_are_equal(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="metric_types.partials")
    reused = run(env.home, DAYS, reuse=True)
    advances = partial_events(caplog, "partial.advance")
    assert [a["date"] for a in advances] == [d.isoformat() for d in DAYS]
    # the first day starts from nothing; every later one from the day before it
    assert advances[0]["since"] is None
    assert [a["since"] for a in advances[1:]] == [d.isoformat() for d in DAYS[:-1]]
    assert len(partial_events(caplog, "partial.stored")) == len(DAYS)

    plain = run(env.home, DAYS, reuse=False)
    oracle = env.oracle()
    try:
        for day in DAYS:
            assert reused[day], f"rows on {day}"
            problems = same_rows(reused[day], plain[day])
            assert not problems, "\n".join(problems[:40])
            problems = differences(oracle_slice(oracle, day), oracle_subset(reused[day]))
            assert not problems, report(problems)
    finally:
        oracle.con.close()
    metrics = {r.metric for r in reused[DAYS[-1]]}
    assert {"latency_capped", "searches_median", *ORACLE_METRICS} <= metrics
    assert any(r.pre_sum for r in reused[DAYS[-1]]), "CUPED covariates are exercised"
    assert any(r.segment for r in reused[DAYS[-1]]), "segments are exercised"


def late_activation(env: Env, day: date) -> tuple[tuple[str, str, int], dict[str, Any]]:
    """An activation on ``day`` of a user nobody has seen, into a group whose period runs
    from before ``day`` through the last day: the row that must change."""
    last = Day(DAYS[-1])
    for e in env.manifest["experiments"]:
        for g in e["groups"]:
            for p in e["periods"]:
                if (
                    p["start"] < Day(day).start
                    and p["end"] > last.end
                    and p["start"] < Day(DAYS[0]).end
                ):
                    ts = Day(day).start + 3_600_000
                    record = {"user_id": 987_654_321_001, "experiment": e["experiment"],
                              "group": g, "ts": ts}  # fmt: skip
                    return (e["experiment"], g, p["start"]), record
    raise AssertionError("no period spans the test's days")


def exposed_of(rows: list[Any], cell: tuple[str, str, int]) -> set[int]:
    """The users of one group's period, as its overall rows say (one number)."""
    key = (*cell, "")
    return {r.exposed for r in rows if (r.experiment, r.group, r.period_start, r.segment) == key}


def test_a_late_activation_makes_later_states_stale(
    env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    last = DAYS[-1]
    before = run(env.home, [last], reuse=True)[last]  # the stored state of the last day, or made
    late_day = DAYS[1]
    cell, record = late_activation(env, late_day)
    late = tmp_path / "late-activations.jsonl"
    late.write_text(json.dumps(record) + "\n")
    udf("--home", str(env.home.root), "data", "import", "--topic", "activations", str(late))

    caplog.clear()
    caplog.set_level(logging.INFO, logger="metric_types.partials")
    after = run(env.home, [last], reuse=True)[last]
    stale = [s["date"] for s in partial_events(caplog, "partial.stale")]
    assert stale == [
        (last - timedelta(days=n)).isoformat() for n in range((last - late_day).days + 1)
    ]
    assert all("activations" in s["differs"] for s in partial_events(caplog, "partial.stale"))
    (advance,) = partial_events(caplog, "partial.advance")
    assert advance["since"] == (late_day - timedelta(days=1)).isoformat()

    # the new user counts: one more exposed in the group (a stale state would miss them)
    (n_before,) = exposed_of(before, cell)
    assert exposed_of(after, cell) == {n_before + 1}
    problems = same_rows(after, run(env.home, [last], reuse=False)[last])
    assert not problems, "\n".join(problems[:40])
    oracle = env.oracle()
    try:
        problems = differences(oracle_slice(oracle, last), oracle_subset(after))
        assert not problems, report(problems)
    finally:
        oracle.con.close()


def test_a_state_without_its_stamp_is_never_read(
    env: Env, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from metric_types.partials import FOLDER
    from udf.location import Location

    day = DAYS[-1] + timedelta(days=1)
    root = env.home.root / "columnar" / FOLDER / f"dt={day.isoformat()}"
    original = Location.write_bytes

    def killed(self: Location, rel: str, data: bytes) -> None:
        if rel.startswith(f"dt={day.isoformat()}/"):
            raise KeyboardInterrupt("killed between the rows and the stamp")
        original(self, rel, data)

    run(env.home, DAYS[-2:], reuse=True)  # valid states of the last two days
    monkeypatch.setattr(Location, "write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        run(env.home, [day], reuse=True)
    monkeypatch.undo()
    assert [p.name for p in root.iterdir() if p.name.startswith("run=")], "the rows were written"
    assert not list(root.glob("*.json")), "no stamp"

    # a torn stamp of the day before is as good as none
    (stamp,) = (root.parent / f"dt={DAYS[-1].isoformat()}").glob("*.json")
    stamp.write_text(stamp.read_text()[:40])

    caplog.clear()
    caplog.set_level(logging.INFO, logger="metric_types.partials")
    reused = run(env.home, [day], reuse=True)[day]
    (advance,) = partial_events(caplog, "partial.advance")
    assert advance["since"] == DAYS[-2].isoformat()  # not the day's orphan, nor the torn one
    assert len(list(root.glob("*.json"))) == 1
    problems = same_rows(reused, run(env.home, [day], reuse=False)[day])
    assert not problems, "\n".join(problems[:40])


def test_replaced_states_are_deleted_once_kept_a_day(
    env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three late activations into the last day, imported at a clock set to 0 h, 20 h and
    30 h: each makes its state stale, and its recomputation replaces the stamp. A replaced
    folder stays (a run may still be reading it) until a write finds it replaced more than a
    day ago, then it is deleted. Only folders the stamp names or lists remain."""
    from metric_types import partials
    from metric_types.partials import FOLDER

    last = DAYS[-1]
    dt = f"dt={last.isoformat()}"
    folder = env.home.root / "columnar" / FOLDER / dt
    run(env.home, [last], reuse=True)
    (stamp_file,) = folder.glob("*.json")
    start = partials.now_ms()
    cell, record = late_activation(env, last)
    listed_before: list[dict[str, Any]] = []
    for n, hours in enumerate((0, 20, 30)):
        listed_before = json.loads(stamp_file.read_text()).get("replaced", [])
        late = tmp_path / f"late-{n}.jsonl"
        late.write_text(json.dumps({**record, "user_id": record["user_id"] + 1 + n}) + "\n")
        udf("--home", str(env.home.root), "data", "import", "--topic", "activations", str(late))
        now = start + hours * 3_600_000
        monkeypatch.setattr(partials, "now_ms", lambda now=now: now)
        caplog.clear()
        caplog.set_level(logging.INFO, logger="metric_types.partials")
        run(env.home, [last], reuse=True)
        assert [s["date"] for s in partial_events(caplog, "partial.stored")] == [last.isoformat()]

    stamp = json.loads(stamp_file.read_text())
    on_disk = {f"{dt}/{p.name}" for p in folder.iterdir() if p.name.startswith("run=")}
    # (the earlier test tore this day's stamp: the folders it named stay, unknown to any)
    assert {stamp["data"], *(r["data"] for r in stamp["replaced"])} <= on_disk
    limit = now - 24 * 3_600_000
    gone = {r["data"] for r in listed_before if r["at"] <= limit}
    assert gone, "the folder replaced at 0 h was deleted at 30 h"
    assert gone == {e["data"] for e in partial_events(caplog, "partial.deleted")}
    assert not gone & on_disk
    assert [r["at"] for r in stamp["replaced"]] == [start + 20 * 3_600_000, now]
    assert exposed_of(run(env.home, [last], reuse=True)[last], cell)  # still reads its state
