"""Integration fixtures: what every test that may start an engine in this process needs."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _python_path_for_flink() -> None:
    """PyFlink's JVM starts once per test process, when a test first uses it, and its Python
    functions in thread mode see the ``PYTHONPATH`` it started with: set before any test can
    start it, whichever test comes first (a test that made its environment by hand and ran
    first left the later thread-mode tests without ``pemja``). Integration tests only: it
    exports this environment's packages to every program a test starts, which a program of
    the system's own Python (Debian's ``docker-compose``) must not import."""
    from streaming.pipeline import share_python_path

    share_python_path()
