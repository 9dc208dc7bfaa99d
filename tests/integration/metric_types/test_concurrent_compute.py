"""``udf compute`` in several OS processes at once, as parallel Airflow tasks run it.

Four processes start together on a fresh home (no Parquet cache yet, so all of them convert
the same archive hours at the same moment), one ``--metric`` each over the same dates,
against the default embedded stores (SQLite metadata and results). All must succeed, and the
results must equal the same four commands run one after another on a copy of the home.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from results.stores import open_store
from udf.cli import main
from udf.home import Home
from udf.settings import load_settings

pytestmark = [pytest.mark.spark, pytest.mark.slow]

WORKLOAD = [
    "--events", "20000", "--users", "2000", "--experiments", "2", "--days", "5",
    "--spammers", "1", "--spam-cap", "200", "--seed", "7",
]  # fmt: skip
METRICS = {"clicks": "click", "searches": "search", "saves": "save", "shares": "share"}
DATES = ("--through", "2026-01-03")


def udf(home: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """A home with the workload imported, its ramps, and four metrics selected by every experiment."""
    files, home = tmp_path / "files", tmp_path / "template"
    udf(home, "generate", "--out", str(files), *WORKLOAD)
    for topic in ("events", "activations"):
        udf(
            home,
            "data",
            "import",
            "--topic",
            topic,
            *map(str, sorted((files / topic).glob("*.jsonl"))),
        )
    udf(home, "ramps", "import", str(files / "ramps.csv"))
    experiments = sorted(
        line.split(",")[0] for line in (files / "ramps.csv").read_text().splitlines()[1:]
    )
    lines = ["metrics:"]
    for name, event in METRICS.items():
        lines += [f"  - name: {name}", "    type: aggregated", f"    event_type: {event}"]
    lines.append("experiments:")
    for experiment in sorted(set(experiments)):
        lines += [f"  - experiment: {experiment}", f"    metrics: [{', '.join(METRICS)}]"]
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("\n".join(lines) + "\n")
    udf(home, "config", "load", str(catalog))
    assert not (home / "columnar").exists()  # fresh: nothing converted yet
    return home


def results(home: Path) -> list[tuple]:
    platform = Home.resolve(home)
    with open_store(platform, load_settings(platform)) as store:
        rows = store.read(source="batch", metric_type="aggregated")
    return sorted(tuple(v for k, v in r.to_dict().items() if k != "computed_at") for r in rows)


def test_four_compute_processes_at_once_equal_one_sequential_run(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sequential = tmp_path / "sequential"
    shutil.copytree(template, sequential)
    monkeypatch.delenv("UDF_METADATA_URL", raising=False)
    command = [str(Path(sys.executable).with_name("udf")), "--home", str(template), "compute",
               "--metric-type", "aggregated", *DATES, "--format", "json"]  # fmt: skip
    started = time.monotonic()
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    processes = [subprocess.Popen([*command, "--metric", metric], **pipes) for metric in METRICS]
    outcomes = [(p.wait(timeout=600), *p.communicate()) for p in processes]
    print(f"4 concurrent udf compute processes: {time.monotonic() - started:.0f} s")
    for code, out, err in outcomes:
        assert code == 0, (out + err)[-3000:]

    for metric in METRICS:  # the same four commands, one after another
        udf(sequential, "compute", "--metric-type", "aggregated", *DATES, "--metric", metric)

    concurrent, expected = results(template), results(sequential)
    assert expected, "the workload produced no results"
    assert {row[2] for row in expected} == set(METRICS)  # field 2: metric
    assert concurrent == expected
