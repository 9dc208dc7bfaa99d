"""Fixtures for the workload generator tests.

``udf.cli`` imports every command module listed in ``COMMAND_MODULES`` when it is first
imported. While colleagues are still writing some of them, :func:`load_generate_command`
puts a placeholder in for any module that does not exist yet (only then), so the
``generate`` command can be tested on its own.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import click
import pytest

CLI_DIR = Path(__file__).resolve().parents[3] / "udf" / "cli"


class _Placeholder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``udf.cli.<name>`` only when no real module exists (last on ``sys.meta_path``)."""

    def find_spec(self, fullname, path=None, target=None):
        parts = fullname.split(".")
        missing = (
            len(parts) == 3
            and parts[:2] == ["udf", "cli"]
            and not (CLI_DIR / f"{parts[2]}.py").exists()
            and not (CLI_DIR / parts[2]).is_dir()
        )
        return importlib.machinery.ModuleSpec(fullname, self) if missing else None

    def create_module(self, spec):
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        name = module.__name__.rsplit(".", 1)[1]
        module.command = click.Command(name, help="placeholder (module not written yet)")


def load_generate_command() -> click.Command:
    try:
        return importlib.import_module("udf.cli.generate").command
    except ModuleNotFoundError:
        for name in [m for m in sys.modules if m == "udf.cli" or m.startswith("udf.cli.")]:
            del sys.modules[name]
        finder = _Placeholder()
        sys.meta_path.append(finder)
        try:
            return importlib.import_module("udf.cli.generate").command
        finally:
            sys.meta_path.remove(finder)


@pytest.fixture(scope="session")
def generate_command() -> click.Command:
    return load_generate_command()
