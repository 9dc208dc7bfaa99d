"""The cleaning on Spark gives exactly the local cleaning's rows, on an archive given by URI.

One small generated workload (duplicate copies, spammers over a cap of 5, late records) is
imported, then its archive is copied elsewhere and dirtied the ways a real archive can be:

- two damaged lines (a torn one, one with a string ``user_id``) inside committed bytes:
  counted as corrupt, left out;
- a later copy of an existing event carrying a *numeric* segment field and another value:
  it forces the line-by-line parser for its file and must lose to the earliest line;
- an **uncommitted tail**: a journal of an unfinished import names a file and its size
  before the import, and lines after that size (valid ones, and half a line) must never be
  read (the copy is not the home's archive, so nothing rolls them back).

The copy is read through ``archive.uri: file://...`` by both cleanings, and by ``compute``
with the Spark cleaning, whose rows must equal a local-cleaning run on the pristine home.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from udf.cli import main
from udf.home import Home
from udf.settings import Settings

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SPAM_CAP = 5
GENERATE = (
    "--events", "6000", "--users", "300", "--experiments", "2", "--days", "5",
    "--window-days", "3", "--duplicate-share", "0.05", "--late-share", "0.05",
    "--spammers", "2", "--spam-cap", str(SPAM_CAP), "--corrupt-share", "0.01", "--seed", "11",
)  # fmt: skip
GHOST = 777_000_000_001  # the user of the uncommitted lines: never seen by a reader
DAY = date(2026, 1, 3)


def udf(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@dataclass
class Env:
    home: Home
    copy: Path  # the dirtied archive, read by URI
    root: Path
    manifest: dict[str, Any]

    def settings(self, cleaning: str, *, uri: bool = True, columnar: str | None = None) -> Settings:
        archive = {"uri": self.copy.as_uri(), "columnar_uri": columnar} if uri else {}
        return Settings.model_validate({
            "spam_cap": SPAM_CAP, "window_days": 3, "archive": archive,
            "spark": {"cleaning": cleaning, "conf": {"spark.sql.shuffle.partitions": "2"}},
        })  # fmt: skip


def _parts(archive: Path, topic: str) -> list[Path]:
    return sorted((archive / topic).glob("dt=*/hour=*/part-*.jsonl"))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("cleaning")
    home = Home.resolve(root / "home").ensure()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UDF_HOME", str(home.root))
        for var in ("UDF_METADATA_URL", "UDF_SPAM_CAP", "UDF_WINDOW_DAYS", "UDF_RESULTS_URL",
                    "UDF_RESULTS_STORE", "UDF_SPARK_CLEANING", "UDF_ARCHIVE_URI", "UDF_COLUMNAR_URI"):  # fmt: skip
            mp.delenv(var, raising=False)
        out = root / "workload"
        udf("generate", "--out", str(out), *GENERATE)
        h = ("--home", str(home.root))
        for topic in ("activations", "events"):
            files = sorted(str(p) for p in (out / topic).glob("*.jsonl"))
            udf(*h, "data", "import", "--topic", topic, "--partitions", "2", *files)
        udf(*h, "ramps", "import", str(out / "ramps.csv"))
        copy = root / "elsewhere" / "archive"
        shutil.copytree(home.archive, copy)
        _dirty(copy)
        yield Env(home, copy, root, json.loads((out / "manifest.json").read_text()))


def _dirty(archive: Path) -> None:
    parts = _parts(archive, "events")
    damaged, doubled, tailed = parts[3], parts[10], parts[20]
    with damaged.open("ab") as fh:
        fh.write(b'{"user_id": 5, "event_ty\n')
        fh.write(b'{"user_id": "5", "event_type": "click", "ts": 1767225600003}\n')
    first = json.loads(doubled.read_bytes().split(b"\n", 1)[0])
    with doubled.open("ab") as fh:  # a later copy: loses to the earliest line
        fh.write(json.dumps({**first, "value": 99.0, "country": 44}).encode() + b"\n")
    committed = tailed.stat().st_size
    journal = archive / "_journal" / "20260110T000000-0badcafe.json"
    journal.parent.mkdir(exist_ok=True)
    journal.write_text(json.dumps({
        "entry": {"import_id": "20260110T000000-0badcafe", "topic": "events", "source": "x.jsonl"},
        "targets": [{"rel": str(tailed.relative_to(archive / "events")), "size_before": committed,
                     "staged_size": 999}],
    }))  # fmt: skip
    ts = json.loads(tailed.read_bytes().split(b"\n", 1)[0])["ts"]
    with tailed.open("ab") as fh:
        for k in range(3):
            fh.write(
                json.dumps({"user_id": GHOST, "event_type": "click", "ts": ts + k}).encode() + b"\n"
            )
        fh.write(b'{"user_id": 777000000001, "event_type": "cli')


def _rows(hours: list[Any]) -> tuple[set[tuple], dict[int, tuple]]:
    """Every cleaned row with its hour (null segment fields left out), and per hour the
    event types and corrupt lines the cleaning reported."""
    rows: set[tuple] = set()
    for h in hours:
        if h.path is None:
            continue
        table = pq.read_table(h.path.removeprefix("file://"))
        names = sorted(c for c in table.column_names if c != "hour")
        for r in table.to_pylist():
            rows.add((h.hour, *((c, r[c]) for c in names if r[c] is not None)))
    return rows, {h.hour: (h.event_types, h.corrupt) for h in hours}


@pytest.fixture(scope="module")
def cleaned(env: Env) -> dict[str, dict[str, Any]]:
    from metric_types.columnar import convert

    out: dict[str, dict[str, Any]] = {}
    for cleaning in ("local", "spark"):
        settings = env.settings(cleaning, columnar=str(env.root / f"columnar-{cleaning}"))
        out[cleaning] = {
            topic: convert(env.home, topic, spam_cap=SPAM_CAP, settings=settings)
            for topic in ("events", "activations")
        }
    return out


def test_the_two_cleanings_give_identical_rows(env: Env, cleaned: dict) -> None:
    for topic in ("events", "activations"):
        local, local_meta = _rows(cleaned["local"][topic])
        spark, spark_meta = _rows(cleaned["spark"][topic])
        assert local and local == spark, topic
        assert local_meta == spark_meta, topic
    # the Spark cleaning wrote its own copy, in folders of its runs
    assert all(
        "/columnar-spark/events/runs/" in h.path for h in cleaned["spark"]["events"] if h.path
    )


def test_the_rows_are_the_workloads_clean_events(env: Env, cleaned: dict) -> None:
    """Numbers from the generator's manifest, not from either cleaning."""
    events, activations = env.manifest["topics"]["events"], env.manifest["topics"]["activations"]
    assert events["duplicate_copies"] > 0 and events["late"] > 0
    assert env.manifest["spam"]["events_over_cap"] > 0
    rows, meta = _rows(cleaned["spark"]["events"])
    assert len(rows) == events["unique"] - env.manifest["spam"]["events_over_cap"]
    assert sum(corrupt for _, corrupt in meta.values()) == 2  # the two damaged lines
    assert not any(("user_id", GHOST) in r for r in rows)  # the uncommitted tail
    assert not any(("value", 99.0) in r or ("country", "44") in r for r in rows)  # earliest wins
    acts, _ = _rows(cleaned["spark"]["activations"])
    # activations are not de-duplicated (exposure takes the earliest); equal rows are one in a set
    assert 0 < len(acts) <= activations["valid"]


def test_a_spark_cleaned_hour_is_reused_until_its_files_change(env: Env, cleaned: dict) -> None:
    from metric_types.columnar import convert

    settings = env.settings("spark", columnar=str(env.root / "columnar-spark"))
    again = convert(env.home, "events", spam_cap=SPAM_CAP, settings=settings)
    assert again == cleaned["spark"]["events"]  # same data folders: nothing rebuilt


def test_a_spark_copy_that_was_removed_is_rebuilt(env: Env, cleaned: dict) -> None:
    from metric_types.columnar import convert

    settings = env.settings("spark", columnar=str(env.root / "columnar-spark"))
    before = [h for h in cleaned["spark"]["events"] if h.path]
    shutil.rmtree(before[0].path.removeprefix("file://"))  # a cleaned hour lost, its stamp kept
    after = [h for h in convert(env.home, "events", spam_cap=SPAM_CAP, settings=settings) if h.path]
    assert after[0].hour == before[0].hour and after[0].path != before[0].path
    assert after[1:] == before[1:]  # that hour alone was cleaned again
    assert _rows(after)[0] == _rows(cleaned["local"]["events"])[0]


def test_compute_reads_a_file_uri_archive_on_spark(env: Env, cleaned: dict) -> None:
    """``aggregated`` for one date: the dirty copy by URI with the Spark cleaning gives the
    rows of the pristine home's archive with the local cleaning."""
    from metric_types.compute import compute
    from results.stores import open_store

    def rows(settings: Settings) -> list[dict]:
        compute(env.home, "aggregated", [DAY], settings=settings)
        with open_store(env.home, settings) as store:
            found = store.read(source="batch", metric_type="aggregated", date_from=DAY, date_to=DAY)
        return sorted(
            ({k: v for k, v in r.to_dict().items() if k != "computed_at"} for r in found),
            key=lambda d: json.dumps(d, sort_keys=True, default=str),
        )

    pristine = rows(env.settings("local", uri=False))
    by_uri = rows(env.settings("spark", columnar=str(env.root / "columnar-spark")))
    assert pristine and any(r["volume"] for r in pristine)
    assert by_uri == pristine
