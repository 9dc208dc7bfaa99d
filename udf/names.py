"""The one rule for names (experiments, groups, metrics, segments), shared by every front door.

Experiment hashes may start with a digit; names never start with '.' or '-' and hold at
most 128 letters, digits, '_', '.' and '-' (ASCII only, matched whole).
"""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
NAME_RULE = "must be 1-128 letters, digits, '_', '.' or '-' (not starting with '.' or '-')"


def is_name(value: str) -> bool:
    return NAME.fullmatch(value) is not None
