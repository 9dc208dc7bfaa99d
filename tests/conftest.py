"""Shared fixtures: every test gets its own platform home."""

from __future__ import annotations

from pathlib import Path

import pytest

from udf.home import Home

# The worked example of docs/contract.md §3 (X = 2).
CONTRACT_EXAMPLES = Path(__file__).resolve().parent / "data" / "contract"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh platform home; ``$UDF_HOME`` points at it so CLI calls use it too."""
    root = tmp_path / "home"
    monkeypatch.setenv("UDF_HOME", str(root))
    monkeypatch.delenv("UDF_METADATA_URL", raising=False)
    return Home.resolve(root).ensure()
