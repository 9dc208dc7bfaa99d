"""``udf results export`` from Druid (the fake router), chosen by UDF_* settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from results.schema import ResultRow
from results.stores.druid import DruidResultsStore
from tests.integration.results.conftest import DATASOURCE
from tests.support.fake_druid import FakeDruid
from tests.support.result_rows import slice_of, slice_rows
from udf.cli import main
from udf.home import Home


def test_export_reads_the_druid_store(
    home: Home, fake_druid: FakeDruid, druid: DruidResultsStore, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    rows = slice_rows(("click", "search"))
    druid.replace(slice_of(("click", "search")), rows)
    monkeypatch.setenv("UDF_RESULTS_STORE", "druid")
    monkeypatch.setenv("UDF_DRUID_ROUTER", fake_druid.url)
    monkeypatch.setenv("UDF_DRUID_DATASOURCE", DATASOURCE)
    out = tmp_path / "druid.jsonl"
    result = CliRunner().invoke(main, ["results", "export", "--source", "batch", "-o", str(out)])
    assert result.exit_code == 0, result.output
    exported = [ResultRow.from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    assert exported == sorted(rows, key=ResultRow.key)
    assert not (home.root / "results.db").exists()


def test_an_unreachable_druid_is_one_line(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UDF_RESULTS_STORE", "druid")
    monkeypatch.setenv("UDF_DRUID_ROUTER", "http://127.0.0.1:9")
    result = CliRunner().invoke(main, ["results", "export", "--source", "batch", "-o", "-"])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("error: Druid SQL at http://127.0.0.1:9 failed")
