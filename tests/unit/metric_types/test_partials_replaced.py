"""Which replaced state folders a new stamp keeps listing and which it deletes (no Spark)."""

from __future__ import annotations

from metric_types.partials import REPLACED_KEPT_FOR, replaced

HOUR = 3_600_000
NOW = 1_767_225_600_000
KEPT_MS = int(REPLACED_KEPT_FOR.total_seconds() * 1000)


def test_nothing_to_replace_without_a_stamp() -> None:
    assert replaced(None, NOW) == ([], [])


def test_the_replaced_stamps_folder_is_kept_from_now() -> None:
    assert replaced({"data": "dt=x/run=a"}, NOW) == ([{"data": "dt=x/run=a", "at": NOW}], [])


def test_folders_replaced_longer_ago_than_kept_are_deleted_the_rest_listed() -> None:
    stamp = {
        "data": "dt=x/run=c",
        "replaced": [
            {"data": "dt=x/run=a", "at": NOW - KEPT_MS - HOUR},  # past the limit
            {"data": "dt=x/run=b", "at": NOW - KEPT_MS + HOUR},  # an hour to go
            "torn",
        ],
    }
    kept, expired = replaced(stamp, NOW)
    assert expired == ["dt=x/run=a"]
    assert kept == [{"data": "dt=x/run=b", "at": NOW - KEPT_MS + HOUR},
                    {"data": "dt=x/run=c", "at": NOW}]  # fmt: skip
