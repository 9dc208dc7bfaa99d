"""What makes a stored ``aggregated`` state stale: its fingerprint (no Spark here)."""

from __future__ import annotations

import json
from datetime import date

from metric_types.base import Day, PeriodRow
from metric_types.columnar import HourFile, convert
from metric_types.partials import fingerprint, read_from
from udf.archive.importer import Importer
from udf.home import Home

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
HOUR = 3_600_000
DAY2 = Day(date(2026, 1, 2))
PERIODS = [PeriodRow("exp", "control", T0, T0 + 5 * 24 * HOUR)]
SPEC = {"format": 1, "windows": {}}


def hours(topic: str, digests: dict[int, str]) -> list[HourFile]:
    first = T0 // HOUR
    return [HourFile(topic, first + h, f"/x/{h}", source=d) for h, d in digests.items()]


def test_an_earlier_hour_changes_the_fingerprint_a_later_one_does_not() -> None:
    events = hours("events", {0: "a", 30: "b", 50: "c"})  # hour 50 is on day 3
    acts = hours("activations", {1: "x"})
    base = fingerprint(SPEC, PERIODS, DAY2, events, acts)
    assert base is not None
    later = hours("events", {0: "a", 30: "b", 50: "CHANGED"})
    assert fingerprint(SPEC, PERIODS, DAY2, later, acts) == base
    earlier = hours("events", {0: "a", 30: "CHANGED", 50: "c"})
    assert fingerprint(SPEC, PERIODS, DAY2, earlier, acts) != base
    new_hour = hours("activations", {1: "x", 40: "late"})  # an import into a new hour of day 2
    assert fingerprint(SPEC, PERIODS, DAY2, events, new_hour)["activations"] != base["activations"]
    moved = [PeriodRow("exp", "control", T0, T0 + 4 * 24 * HOUR)]  # a ramp edited
    assert fingerprint(SPEC, moved, DAY2, events, acts)["periods"] != base["periods"]
    assert fingerprint({**SPEC, "format": 2}, PERIODS, DAY2, events, acts)["spec"] != base["spec"]


def test_an_hour_without_a_digest_vouches_for_nothing() -> None:
    events = hours("events", {0: "a", 30: ""})
    assert fingerprint(SPEC, PERIODS, DAY2, events, hours("activations", {1: "x"})) is None


def test_cuped_reaches_back_its_window_before_the_periods() -> None:
    window = 2 * 24 * HOUR
    assert read_from(PERIODS, {"exp": window}, T0) == T0 - window
    assert read_from(PERIODS, {"exp": window}, T0 + 24 * HOUR) == T0 + 24 * HOUR - window
    assert read_from(PERIODS, {}, T0 + 24 * HOUR) == T0 + 24 * HOUR
    events = hours("events", {-10: "pre", 0: "a"})
    spec = {"format": 1, "windows": {"exp": window}}
    acts = hours("activations", {1: "x"})
    base = fingerprint(spec, PERIODS, DAY2, events, acts)
    changed = fingerprint(spec, PERIODS, DAY2, hours("events", {-10: "PRE", 0: "a"}), acts)
    assert base is not None and changed is not None and changed["events"] != base["events"]


def test_a_converted_hour_carries_the_digest_of_its_files(home: Home) -> None:
    path = home.root / "a.jsonl"
    path.write_text(json.dumps({"user_id": 1, "event_type": "e", "ts": T0 + 1}) + "\n")
    Importer(home).import_files("events", [str(path)])
    [first] = convert(home, "events", spam_cap=10)
    assert first.source and convert(home, "events", spam_cap=10)[0].source == first.source
    assert convert(home, "events", spam_cap=3)[0].source != first.source
    path.write_text(json.dumps({"user_id": 2, "event_type": "e", "ts": T0 + 2}) + "\n")
    Importer(home).import_files("events", [str(path)])  # a late import into the same hour
    [grown] = convert(home, "events", spam_cap=10)
    assert grown.source not in (first.source, "")
