"""Unit tests see the shipped configs, whatever a session-wide integration fixture set."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _shipped_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Airflow integration session points UDF_PIPELINES_DIR at its own pipelines for
    # the rest of the run; unit tests must not depend on test order.
    monkeypatch.delenv("UDF_PIPELINES_DIR", raising=False)
