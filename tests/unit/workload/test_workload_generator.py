"""Determinism, bounded memory, argument checks and the ``udf generate`` command."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from udf.errors import InputError
from udf.workload import WorkloadParams, generate

SMALL = WorkloadParams(events=15_000, users=800, days=5, spam_cap=100, corrupt_share=0.01)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_arguments_give_byte_identical_output(tmp_path: Path):
    generate(SMALL, tmp_path / "a")
    generate(SMALL, tmp_path / "b")
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a == b
    assert "manifest.json" in a and "ramps.csv" in a
    assert any(name.startswith("events/") for name in a)
    generate(replace(SMALL, seed=1), tmp_path / "c")
    c = _tree(tmp_path / "c")
    assert c["ramps.csv"] != a["ramps.csv"]
    shared = set(a) & set(c)
    assert all(a[name] != c[name] for name in shared if name != "manifest.json")


def _peak(params: WorkloadParams, out: Path) -> tuple[int, dict]:
    tracemalloc.start()
    try:
        manifest = generate(params, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, manifest


def test_working_set_does_not_grow_with_the_number_of_events(tmp_path: Path):
    base = WorkloadParams(
        events=20_000, users=2_000, days=5, spam_cap=100, chunk_records=1_000, corrupt_share=0.01
    )
    big = replace(base, events=200_000)
    generate(replace(base, events=5_000), tmp_path / "warm-up")  # first-use imports and caches
    small_peak, small = _peak(base, tmp_path / "small")
    big_peak, large = _peak(big, tmp_path / "big")
    # 10x the events: hours are cut into more slices, each still about chunk_records
    assert large["slicing"]["slices_per_hour"] > small["slicing"]["slices_per_hour"]
    assert large["slicing"]["max_slice_records"] < 2 * base.chunk_records
    assert small["slicing"]["max_slice_records"] < 2 * base.chunk_records
    # traced peak (numpy working set, late buffer, Python objects) far below the 10x ratio;
    # what grows is the late buffer (late_share x events per hour x 48 h at most), not N
    assert big_peak < 2 * small_peak, (small_peak, big_peak)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"days": 4}, "--days"),
        ({"start": "2026-13-01"}, "--start"),
        ({"corrupt_share": 1.5}, "--corrupt-share"),
        ({"events": 0}, "--events"),
        ({"spammers": 10, "events": 1_000}, "--events"),
        ({"users": 2, "spammers": 3}, "--spammers"),
    ],
)
def test_bad_arguments_raise_input_error(tmp_path: Path, change: dict, message: str):
    with pytest.raises(InputError, match=message):
        generate(replace(SMALL, **change), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # nothing partial left behind


def test_refuses_a_non_empty_output_unless_forced(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        generate(SMALL, out)
    assert (out / "old.txt").exists()
    generate(SMALL, out, force=True)
    assert not (out / "old.txt").exists()
    assert (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_defaults_to_the_home_and_prints_a_summary(generate_command, home):
    args = ["--events", "12000", "--users", "500", "--days", "5", "--spam-cap", "100"]
    result = CliRunner().invoke(generate_command, [*args, "--format", "json"], obj={})
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["topic"] for r in rows] == ["events", "activations"]
    assert rows[0]["records"] == 12_000 and rows[0]["spammers"] == 3
    manifest = json.loads((home.root / "workload" / "manifest.json").read_text())
    assert manifest["topics"]["events"]["corrupt"] == rows[0]["corrupt"]
    assert manifest["parameters"]["events"] == 12_000
    again = CliRunner().invoke(generate_command, args, obj={})
    assert isinstance(again.exception, InputError)
    table = CliRunner().invoke(generate_command, [*args, "--force"], obj={})
    assert table.exit_code == 0 and "events" in table.stdout


def test_cli_rejects_bad_arguments(generate_command, home):
    result = CliRunner().invoke(generate_command, ["--window-days", "0"], obj={})
    assert isinstance(result.exception, InputError)
    assert "--window-days" in str(result.exception)
