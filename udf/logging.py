"""Structured logging on the standard library, so Airflow's task logs capture it as they are.

``get_logger(name).info("import.done", records=3)`` logs the event name followed by its
fields as ``key=value`` pairs; with ``UDF_LOG_JSON=1`` the CLI prints one JSON object per
line instead. Without :func:`configure` (inside Airflow, in tests) records go to whatever
handlers the host process set up, and only warnings and errors reach stderr by default.
(The standard library, not structlog: importing structlog costs 0.25 s on every command and
every DAG parse.)
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_HANDLER_NAME = "udf-cli"
# Libraries' loggers held to a higher level on the command line: what they say is about them,
# not about the user's work. PyFlink imports Apache Beam, which warns on every stream command
# that it cannot load its Google Cloud Storage filesystem (google-cloud-storage is not
# installed; nothing here reads gs:// paths).
QUIET = {"apache_beam.io.filesystems": "ERROR"}


class StructuredLogger:
    """A thin wrapper over a stdlib logger: an event name plus keyword fields."""

    def __init__(self, name: str):
        self._logger = logging.getLogger(name)

    def _log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        text = " ".join([event, *(f"{k}={_text(v)}" for k, v in fields.items())])
        self._logger.log(
            level, text, extra={"udf_event": event, "udf_fields": fields}, stacklevel=3
        )

    def debug(self, event: str, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(name)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "udf_event", record.getMessage()),
            **getattr(record, "udf_fields", {}),
        }
        return json.dumps(payload, default=str)


def configure(level: str | None = None) -> None:
    """Set up logging for a command-line process (the CLI calls this once)."""
    level_name = (level or os.environ.get("UDF_LOG_LEVEL") or "WARNING").upper()
    if level_name not in LEVELS:
        raise ValueError(f"unknown log level {level_name!r}: expected one of {', '.join(LEVELS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if os.environ.get("UDF_LOG_JSON") == "1":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    for name, floor in QUIET.items():
        logging.getLogger(name).setLevel(floor)


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text
