"""Fixtures for the statistics tests.

``udf.cli`` imports every command module listed in ``COMMAND_MODULES`` when it loads.
While sibling packages are still being written some of those modules may not exist yet;
:func:`cli_main` stands in a placeholder command for each missing one, so the ``analyze``
tests exercise the real ``udf`` group without depending on unrelated work.
"""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "stats"


def _command_modules() -> tuple[str, ...]:
    tree = ast.parse((ROOT / "udf" / "cli" / "__init__.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMMAND_MODULES" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    return ()


@pytest.fixture(scope="session")
def cli_main() -> click.Group:
    """The ``udf`` click group, with placeholders for command modules not written yet."""
    if "udf.cli" not in sys.modules:
        for name in _command_modules():
            if (
                not (ROOT / "udf" / "cli" / f"{name}.py").exists()
                and not (ROOT / "udf" / "cli" / name / "__init__.py").exists()
            ):
                stub = types.ModuleType(f"udf.cli.{name}")
                stub.command = click.Command(name, callback=lambda: None)  # type: ignore[attr-defined]
                sys.modules[f"udf.cli.{name}"] = stub
    from udf.cli import main

    return main
