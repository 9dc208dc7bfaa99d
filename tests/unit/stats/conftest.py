"""Fixtures for the statistics tests."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "stats"


@pytest.fixture(scope="session")
def cli_main() -> click.Group:
    """The real ``udf`` click group."""
    from udf.cli import main

    return main
