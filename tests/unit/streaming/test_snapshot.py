"""Period snapshots: a version per change, with the changed pieces only; the pieces are the
periods batch derives from the ramps, cut at the experiment's allocation intervals."""

from __future__ import annotations

from pathlib import Path

from metadata.periods import DAY_MS, window_ms
from metadata.records import RampRow
from metadata.repository import MetadataStore
from streaming.snapshot import PeriodSnapshots, Piece, current_pieces, period_ends
from udf.home import Home

T0 = 1_767_225_600_000


def test_versions_hold_changes_and_removals(tmp_path: Path) -> None:
    snapshots = PeriodSnapshots(tmp_path / "periods")
    end = T0 + 3 * DAY_MS
    first = {("exp", "control", T0, T0): Piece(end, T0, end),
             ("exp", "treatment", T0, T0): Piece(end, T0, end)}  # fmt: skip
    assert snapshots.publish(first) == 1
    assert snapshots.publish(first) is None  # unchanged: no new version
    extended = {**first, ("exp", "control", T0, T0): Piece(end + DAY_MS, T0, end + DAY_MS)}
    assert snapshots.publish(extended) == 2
    assert (tmp_path / "periods" / "v00000002.jsonl").read_text().count("\n") == 1
    del extended[("exp", "treatment", T0, T0)]
    assert snapshots.publish(extended) == 3
    assert snapshots.published() == (3, extended)
    assert '"alive": false' in (tmp_path / "periods" / "v00000003.jsonl").read_text()


def test_pieces_are_the_periods_batch_derives_cut_at_every_ramp(home: Home) -> None:
    with MetadataStore.for_home(home) as store:
        store.import_ramps([
            RampRow("exp", "control", T0, 10.0), RampRow("exp", "control", T0 + DAY_MS, 20.0),
            RampRow("exp", "control", T0 + 5 * DAY_MS, 50.0),
            RampRow("exp", "treatment", T0 + 2 * DAY_MS, 10.0),
        ])  # fmt: skip
    pieces = current_pieces(home, window_ms(3))
    # the contract's worked example: extended to T0+4d, then a new period from T0+5d
    assert period_ends(pieces) == {
        ("exp", "control", T0): T0 + 4 * DAY_MS,
        ("exp", "control", T0 + 5 * DAY_MS): T0 + 8 * DAY_MS,
        ("exp", "treatment", T0 + 2 * DAY_MS): T0 + 5 * DAY_MS,
    }
    # each cut at the ramps of either group: T0, T0+1d, T0+2d, T0+5d
    day = [T0 + k * DAY_MS for k in range(9)]
    assert pieces == {
        ("exp", "control", T0, day[0]): Piece(day[4], day[0], day[1]),
        ("exp", "control", T0, day[1]): Piece(day[4], day[1], day[2]),
        ("exp", "control", T0, day[2]): Piece(day[4], day[2], day[4]),
        ("exp", "control", day[5], day[5]): Piece(day[8], day[5], day[8]),
        ("exp", "treatment", day[2], day[2]): Piece(day[5], day[2], day[5]),
    }
