"""Structured logging: key=value lines on stderr, JSON lines when ``UDF_LOG_JSON=1``.

(``structlog.dev``'s pretty console renderer is avoided: importing it costs 0.3 s on every
command, and DAG parsing imports this module too.)
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

_configured = False


def configure(level: str | None = None) -> None:
    global _configured
    _configured = True
    level_name = (level or os.environ.get("UDF_LOG_LEVEL") or "WARNING").upper()
    renderer = (
        structlog.processors.JSONRenderer()
        if os.environ.get("UDF_LOG_JSON") == "1"
        else structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True
        )
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level_name]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger that honours ``$UDF_LOG_LEVEL`` even when the CLI did not configure logging."""
    if not _configured:
        configure()
    return structlog.get_logger(name)
