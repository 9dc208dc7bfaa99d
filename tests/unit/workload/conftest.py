"""Fixtures for the workload generator tests."""

from __future__ import annotations

import click
import pytest


@pytest.fixture(scope="session")
def generate_command() -> click.Command:
    """The real ``udf generate`` command."""
    from udf.cli.generate import command

    return command
