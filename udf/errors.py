"""The platform's one root exception and its few subclasses.

Every error a user can cause (bad input, bad config, a missing archive) is a
``UdfError``: the command line prints its message on one line and exits non-zero,
and nothing else in the platform needs to know about other exception types.
Per-item problems that must not stop a run (a corrupt record, a degenerate
comparison) are *not* exceptions: they are counted and reported as result codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class UdfError(Exception):
    """Root of every error the platform raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one config file: which file, which field, what is wrong."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class ConfigError(UdfError):
    """One or more config files are invalid; carries every issue found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue]):
        self.issues = list(issues)
        count = len(self.issues)
        head = f"{count} config error{'s' if count != 1 else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  {issue}" for issue in self.issues))


class InputError(UdfError):
    """A file or argument given on the command line cannot be used."""


class ArchiveError(UdfError):
    """The archive is missing, inconsistent, or cannot be written."""


class MetadataError(UdfError):
    """The metadata store is unreachable, out of date, or refuses a change."""


class ResultsError(UdfError):
    """The results store is unreachable, refuses a write, or holds a newer schema."""


class ConnectorError(UdfError):
    """A connector an engine needs (the Flink Kafka connector's jars) cannot be found or fetched."""


class CustomMetricError(InputError):
    """A custom metric's SQL or function is refused: the message says exactly why."""


class EngineError(UdfError):
    """An engine cannot be set up: no JDK to compile the streaming pipeline's Java functions."""
