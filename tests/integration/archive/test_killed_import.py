"""No reader ever sees half an import: SIGKILL in the apply phase, and readers during an import.

``udf data import`` runs as a real OS process (``stop_in_apply.py``), stops itself at a chosen
point of its apply phase, and is killed there with SIGKILL by this test. The import left some
archive files holding part of it. Then each reader runs first, on its own copy of that
archive: ``udf data info``, ``udf data seal``, the Parquet conversion that ``udf compute``
reads, ``udf data deadletters``, and (once, on Spark) ``compute`` itself. Each must give what it gives after an
uninterrupted import: readers finish the crashed import before reading (docs/archive.md,
"Readers see committed imports only").
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from udf.cli import main
from udf.home import Home

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
STOPPER = Path(__file__).with_name("stop_in_apply.py")
SPAM_CAP = 100
THROUGH = "2026-01-04"


def udf(home: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def data_files(home: Path) -> dict[str, bytes]:
    archive = home / "archive"
    return {
        str(p.relative_to(archive)): p.read_bytes() for p in sorted(archive.rglob("part-*.jsonl"))
    }


def info(home: Path) -> list[dict]:
    return json.loads(udf(home, "data", "info", "--format", "json"))


def dead_letters(home: Path) -> dict:
    """Counts by kind, and every dead letter (import ids differ between homes: left out)."""
    [shown] = json.loads(udf(home, "data", "deadletters", "--limit", "1000", "--format", "json"))
    return {
        "counts": shown["counts"],
        "letters": [{k: v for k, v in d.items() if k != "import_id"} for d in shown["newest"]],
    }


def converted(home: Path) -> dict[str, list[dict]]:
    """What ``udf compute`` reads: the clean Parquet hours, by hour."""
    from metric_types.columnar import convert

    return {
        f"{topic}/{h.hour}": pq.read_table(h.path).to_pylist()
        for topic in ("events", "activations")
        for h in convert(Home(home), topic, spam_cap=SPAM_CAP)
    }


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``before``: activations, ramps and the first day of events; ``after``: the same plus
    ``big`` imported without interruption. ``big`` (the later days, whose late records reach
    back into the hours of the first day) is the import that gets killed."""
    root = tmp_path_factory.mktemp("killed")
    work = root / "workload"
    udf(root / "scratch", "generate", "--out", str(work), "--events", "12000", "--users", "1000",
        "--experiments", "2", "--days", "5", "--corrupt-share", "0.01", "--seed", "5",
        "--spam-cap", str(SPAM_CAP), "--format", "json")  # fmt: skip
    events = sorted((work / "events").glob("*.jsonl"))
    big = root / "big.jsonl"
    big.write_bytes(b"".join(p.read_bytes() for p in events[1:]))
    before = root / "before"
    activations = [str(p) for p in (work / "activations").glob("*.jsonl")]
    udf(before, "data", "import", "--topic", "activations", "--partitions", "2", *activations)
    udf(before, "ramps", "import", str(work / "ramps.csv"))
    udf(before, "data", "import", "--topic", "events", "--partitions", "2", str(events[0]))
    (before / "settings.yaml").write_text(f"spam_cap: {SPAM_CAP}\n")
    after = root / "after"
    shutil.copytree(before, after)
    udf(after, "data", "import", "--topic", "events", str(big))
    return {"before": before, "after": after, "big": big}


@pytest.fixture(scope="module")
def expected(homes: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What the readers give after the uninterrupted import (read from a copy)."""
    after = tmp_path_factory.mktemp("expected") / "after"
    shutil.copytree(homes["after"], after)
    return {
        "info": info(after),
        "tables": converted(after),
        "files": data_files(after),
        "dead": dead_letters(after),
    }


def start_import(home: Path, big: Path, point: str) -> subprocess.Popen:
    """``udf data import`` of ``big`` in its own process, stopped at ``point`` of its apply."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "UDF_LOG_LEVEL": "ERROR"}
    env.pop("UDF_HOME", None)
    proc = subprocess.Popen(
        [sys.executable, str(STOPPER), point, "--home", str(home), "data", "import",
         "--topic", "events", str(big)],
        cwd=REPO, env=env,
    )  # fmt: skip
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the import ended before {point}"
    return proc


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


def killed_at(homes: dict[str, Path], tmp_path: Path, point: str) -> Path:
    home = tmp_path / "killed"
    shutil.copytree(homes["before"], home)
    kill(start_import(home, homes["big"], point))
    return home


# Where the kill lands; the killed import appends to 215 target files.
POINTS = ["journal", "target:60", "mid-target:120", "ledger", "unlink"]


@pytest.mark.parametrize("point", POINTS)
def test_every_reader_sees_the_whole_import_after_a_kill(
    homes: dict[str, Path], expected: dict, tmp_path: Path, point: str
) -> None:
    killed = killed_at(homes, tmp_path, point)
    on_disk = data_files(killed)
    if point.startswith(("target", "mid-target")):
        # the old failure: files holding part of the import, read as if it were complete
        assert on_disk != data_files(homes["before"]) and on_disk != expected["files"]
    expected_info, expected_tables = expected["info"], expected["tables"]

    for reader in ("info", "deadletters", "seal", "convert"):
        home = tmp_path / reader
        shutil.copytree(killed, home)
        if reader == "info":
            assert info(home) == expected_info
        elif reader == "deadletters":
            assert dead_letters(home) == expected["dead"]
        elif reader == "seal":
            udf(home, "data", "seal", "--topic", "events", "--through", THROUGH)
            assert info(home) == expected_info
        else:
            assert converted(home) == expected_tables
        assert data_files(home) == expected["files"], reader
        assert not list((home / "archive" / "_journal").glob("*.json"))
    again = json.loads(
        udf(killed, "data", "import", "--topic", "events", str(homes["big"]), "--format", "json")
    )
    assert again[0]["duplicate_of"] is not None  # recovered once, never doubled


@pytest.mark.spark
def test_compute_after_a_kill_equals_compute_after_a_whole_import(
    homes: dict[str, Path], tmp_path: Path
) -> None:
    from metric_types.compute import compute
    from results.stores import open_store
    from udf.settings import load_settings

    def results(home: Path) -> list[dict]:
        compute(Home(home), "aggregated", [date.fromisoformat(THROUGH)])
        with open_store(Home(home), load_settings(Home(home))) as store:
            rows = store.read(source="batch")
        return sorted(
            ({k: v for k, v in r.to_dict().items() if k != "computed_at"} for r in rows),
            key=lambda r: json.dumps(r, sort_keys=True),
        )

    killed = killed_at(homes, tmp_path, "mid-target:120")
    whole = tmp_path / "whole"
    shutil.copytree(homes["after"], whole)
    expected = results(whole)
    assert len(expected) > 20 and any(r["volume"] for r in expected)
    assert results(killed) == expected


def _waiting_for_lock(lock: Path) -> bool:
    """Whether a process is blocked in flock on ``lock`` (a ``->`` line of /proc/locks)."""
    inode = lock.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        if "->" in line and line.split()[-3].endswith(f":{inode}"):
            return True
    return False


@pytest.mark.parametrize("importer_fate", ["finishes", "is killed"])
def test_a_reader_during_an_import_sees_all_of_it_or_none(
    homes: dict[str, Path], expected: dict, tmp_path: Path, importer_fate: str
) -> None:
    home = tmp_path / "home"
    shutil.copytree(homes["before"], home)
    importer = start_import(home, homes["big"], "mid-target:120")  # half-applied, holding the lock
    env = {**os.environ, "PYTHONPATH": str(REPO), "UDF_LOG_LEVEL": "ERROR"}
    reader = subprocess.Popen(
        [str(Path(sys.executable).with_name("udf")), "--home", str(home), "data", "info", "--format", "json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not _waiting_for_lock(home / "archive" / ".apply.lock"):
        assert reader.poll() is None, "the reader did not wait for the import being applied"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    if importer_fate == "finishes":
        os.kill(importer.pid, signal.SIGCONT)
        assert importer.wait() == 0
        seen = expected["info"]
    else:
        kill(importer)
        seen = info(homes["before"])
        seen[0]["unfinished"] = 1  # left out, and said so
    out, _ = reader.communicate(timeout=60)
    assert json.loads(out) == seen
    assert info(home) == expected["info"]  # the next reader finished it
