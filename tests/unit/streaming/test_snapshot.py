"""Period snapshots: a version per change, with the changed periods only."""

from __future__ import annotations

from pathlib import Path

from metadata.periods import DAY_MS, window_ms
from metadata.records import RampRow
from metadata.repository import MetadataStore
from streaming.snapshot import PeriodSnapshots, current_periods
from udf.home import Home

T0 = 1_767_225_600_000


def test_versions_hold_changes_and_removals(tmp_path: Path) -> None:
    snapshots = PeriodSnapshots(tmp_path / "periods")
    first = {("exp", "control", T0): T0 + 3 * DAY_MS, ("exp", "treatment", T0): T0 + 3 * DAY_MS}
    assert snapshots.publish(first) == 1
    assert snapshots.publish(first) is None  # unchanged: no new version
    extended = {**first, ("exp", "control", T0): T0 + 4 * DAY_MS}
    assert snapshots.publish(extended) == 2
    assert (tmp_path / "periods" / "v00000002.jsonl").read_text().count("\n") == 1
    del extended[("exp", "treatment", T0)]
    assert snapshots.publish(extended) == 3
    assert snapshots.published() == (3, extended)
    assert '"alive": false' in (tmp_path / "periods" / "v00000003.jsonl").read_text()


def test_periods_come_from_the_ramps_as_batch_derives_them(home: Home) -> None:
    with MetadataStore.for_home(home) as store:
        store.import_ramps([
            RampRow("exp", "control", T0, 10.0), RampRow("exp", "control", T0 + DAY_MS, 20.0),
            RampRow("exp", "control", T0 + 5 * DAY_MS, 50.0),
        ])  # fmt: skip
    # the contract's worked example: extended to T0+4d, then a new period from T0+5d
    assert current_periods(home, window_ms(3)) == {
        ("exp", "control", T0): T0 + 4 * DAY_MS,
        ("exp", "control", T0 + 5 * DAY_MS): T0 + 8 * DAY_MS,
    }
