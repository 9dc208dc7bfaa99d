"""Integration tests run in two worker processes (``make test``: pytest-xdist, ``--dist
loadgroup``), one area of the tree at a time.

Each folder under ``tests/integration`` is one group, so that the area's session fixtures
(the streaming workload, the Airflow deployment, the Spark clusters) are built once, in
one worker. Much of an engine test's time is waiting (a JVM starting, a job being
scheduled, a DAG run being picked up), so two workers on two cores finish the suite well
before one. The longest areas go first, so that the other worker takes the short ones
meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LONGEST_FIRST = ("streaming", "airflow", "metric_types")  # measured with --durations


def _area(item: pytest.Item) -> str | None:
    try:
        return Path(item.path).resolve().relative_to(HERE).parts[0]
    except ValueError:  # not an integration test (a run of the unit tests too)
        return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        area = _area(item)
        return LONGEST_FIRST.index(area) if area in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside an area is kept
    for item in items:
        area = _area(item)
        if area is not None:
            item.add_marker(pytest.mark.xdist_group(area))
