"""``udf config load``: the good files reach the metadata store even when one file is broken."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from metadata.repository import MetadataStore
from udf.cli import main
from udf.home import Home


def test_nine_good_files_load_and_the_broken_one_is_named(home: Home, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for i in range(10):
        owner = "not-an-email" if i == 4 else f"owner{i}@example.com"
        (catalog / f"team{i}.yaml").write_text(
            f"metrics:\n  - name: metric_{i}\n    type: aggregated\n    event_type: e{i}\n"
            f"    owners: [{owner}]\n"
        )

    result = CliRunner().invoke(main, ["config", "load", str(catalog)])

    assert result.exit_code == 1
    assert (
        f"{catalog / 'team4.yaml'}: metrics[0] (metric_4).owners[0]: 'not-an-email' is not an email"
        in result.output
    )
    assert "loaded 9 file(s): metrics 9 added" in result.output
    stored = MetadataStore.for_home(home).metrics()
    assert sorted(m.name for m in stored) == [f"metric_{i}" for i in range(10) if i != 4]
    owners = {m.name: m.owners for m in stored}
    assert list(owners["metric_7"]) == ["owner7@example.com"]


def test_validate_only_reports(home: Home, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("segments:\n  - name: country\n    field: country\n")
    result = CliRunner().invoke(main, ["config", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert not home.metadata_db.exists()


def test_data_import_errors_are_one_line(home: Home, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["data", "import", "--topic", "events", str(tmp_path / "missing.jsonl")]
    )
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {tmp_path / 'missing.jsonl'}: no such file"
