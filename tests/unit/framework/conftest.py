"""A platform home with a SQLite metadata store on a hand-moved clock.

The same fixtures are provided for PostgreSQL and MariaDB by
``tests/integration/framework/conftest.py``, which re-runs the plan and lease tests there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from metadata.repository import MetadataStore
from tests.unit.framework.support import Clock
from udf.home import Home


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 6, 2, tzinfo=UTC))  # DS ended two hours ago


@pytest.fixture
def store(home: Home, clock: Clock) -> Iterator[MetadataStore]:
    with MetadataStore.for_home(home, clock=clock) as opened:
        yield opened
