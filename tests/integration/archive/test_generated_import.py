"""End to end through the command line: generate a messy workload, import it, count exactly.

The generator's manifest says how many valid and corrupt lines each file holds; the
archive, the dead letters and the metadata store must agree with it to the record.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from udf.archive.layout import ArchiveLayout
from udf.cli import main
from udf.home import Home


def udf(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("workload")
    udf(
        "generate",
        "--out",
        str(out),
        "--force",
        "--events",
        "60000",
        "--users",
        "4000",
        "--experiments",
        "6",
        "--days",
        "6",
        "--corrupt-share",
        "0.01",
        "--seed",
        "11",
    )
    return out, json.loads((out / "manifest.json").read_text())


def import_topic(home: Home, out: Path, topic: str) -> list[dict]:
    files = sorted(str(p) for p in (out / topic).glob("*.jsonl"))
    return json.loads(
        udf(
            "--home", str(home.root), "data", "import", "--topic", topic, *files, "--format", "json"
        )
    )


@pytest.mark.parametrize("topic", ["events", "activations"])
def test_every_valid_record_kept_every_corrupt_one_dead_lettered(
    home: Home, workload: tuple[Path, dict], topic: str
) -> None:
    out, manifest = workload
    expected = manifest["topics"][topic]
    assert expected["corrupt"] >= 0.009 * expected["valid"]  # about 1% corrupt lines

    reports = import_topic(home, out, topic)

    for report in reports:
        rel = f"{topic}/{Path(report['source']).name}"
        assert (report["records"], report["corrupt"]) == (
            expected["files"][rel]["valid"],
            expected["files"][rel]["corrupt"],
        ), rel
    archived = [
        json.loads(line)
        for f in ArchiveLayout(home.archive).data_files(topic)
        for line in f.read_text().splitlines()
    ]
    assert len(archived) == expected["valid"]
    dead = [
        json.loads(line)
        for f in (home.deadletter / topic).glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert len(dead) == expected["corrupt"]
    assert all(d["reason"] for d in dead)
    if topic == "activations":
        by_group = Counter((r["experiment"], r["group"]) for r in archived)
        assert by_group == Counter(
            {
                (exp, group): n
                for exp, groups in expected["by_experiment_group"].items()
                for group, n in groups.items()
            }
        )

    again = import_topic(home, out, topic)
    assert all(r["duplicate_of"] for r in again)
    assert (
        sum(1 for f in ArchiveLayout(home.archive).data_files(topic) for _ in f.open())
        == expected["valid"]
    )


def test_info_and_ramps_agree_with_the_manifest(home: Home, workload: tuple[Path, dict]) -> None:
    out, manifest = workload
    for topic in ("events", "activations"):
        import_topic(home, out, topic)
    udf("--home", str(home.root), "ramps", "import", str(out / "ramps.csv"))

    info = {
        row["topic"]: row
        for row in json.loads(udf("--home", str(home.root), "data", "info", "--format", "json"))
    }
    for topic in ("events", "activations"):
        assert info[topic]["records"] == manifest["topics"][topic]["valid"]
        assert info[topic]["corrupt"] == manifest["topics"][topic]["corrupt"]
    [letters] = json.loads(
        udf("--home", str(home.root), "data", "deadletters", "--limit", "3", "--format", "json")
    )
    for topic in ("events", "activations"):
        counted = sum(c["lines"] for c in letters["counts"] if c["topic"] == topic)
        assert counted == manifest["topics"][topic]["corrupt"]
    assert len(letters["newest"]) == 3 and all(d["reason"] and d["raw"] for d in letters["newest"])
    listed = json.loads(udf("--home", str(home.root), "experiments", "list", "--format", "json"))
    # two independent derivations of the aggregation periods: the generator's and the store's
    expected = {
        (e["experiment"], g): [(p["start"], p["end"]) for p in e["periods"]]
        for e in manifest["experiments"]
        for g in e["groups"]
    }
    stored = {
        (e["experiment"], g["group"]): [(p["start"], p["end"]) for p in g["periods"]]
        for e in listed
        for g in e["groups"]
    }
    assert stored == expected
