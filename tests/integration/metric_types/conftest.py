"""Make ``tests/oracle`` importable as ``oracle`` (the suite runs with --import-mode=importlib)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parents[2])
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
