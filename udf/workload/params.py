"""The generator's parameters, their defaults and their validation."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from udf.errors import InputError
from udf.times import LAST_DAY, RANGE_TEXT, check_day
from udf.vocabulary import DEFAULT_SPAM_CAP, DEFAULT_WINDOW_DAYS

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MAX_USERS = 2**31 - 1
MAX_EVENT_TYPES = 999
MAX_EXPERIMENTS = 1000
MAX_SPAM_CAP = 100_000


@dataclass(frozen=True)
class WorkloadParams:
    """Everything that determines a workload; equal params give byte-identical output."""

    events: int = 200_000
    """Valid event records written (duplicate copies included, corrupt lines excluded)."""
    users: int = 20_000
    experiments: int = 6
    days: int = 8
    start: str = "2026-01-01"
    seed: int = 0
    window_days: int = DEFAULT_WINDOW_DAYS
    event_types: int = 6
    corrupt_share: float = 0.001
    duplicate_share: float = 0.01
    late_share: float = 0.02
    spammers: int = 3
    spam_cap: int = DEFAULT_SPAM_CAP
    segment_share: float = 0.5
    trigger_share: float = 0.2
    max_late_hours: int = 48
    skew: float = 0.0
    """Health-check drills: share of the first experiment's control users put in its first
    treatment instead (0.1 turns a configured 50/50 into 45/55: a sample-ratio mismatch)."""
    cross_group_share: float = 0.0
    """Share of the triggers of the first experiment of each scenario (the first three) sent
    to the next group instead of the user's own, so some users are exposed to two groups."""
    chunk_records: int = 200_000
    """Upper bound on the records generated per time slice (bounds the working set)."""

    @property
    def start_ms(self) -> int:
        day = dt.date.fromisoformat(self.start)
        moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        return int(moment.timestamp()) * 1000

    @property
    def hours(self) -> int:
        return self.days * 24

    @property
    def window_ms(self) -> int:
        return self.window_days * DAY_MS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> WorkloadParams:
        """Raise :class:`InputError` naming the first bad argument; return ``self`` if fine."""
        try:
            start = dt.date.fromisoformat(self.start)
        except (TypeError, ValueError):
            raise InputError(f"--start must be a date YYYY-MM-DD, got {self.start!r}") from None
        if len(self.start) != 10:
            raise InputError(f"--start must be a date YYYY-MM-DD, got {self.start!r}")
        check_day(start, "--start")
        _at_least("--events", self.events, 1)
        _at_least("--users", self.users, 1)
        if self.users > MAX_USERS:
            raise InputError(f"--users must be at most {MAX_USERS:,}, got {self.users:,}")
        _at_least("--experiments", self.experiments, 1)
        if self.experiments > MAX_EXPERIMENTS:
            raise InputError(f"--experiments must be at most {MAX_EXPERIMENTS}")
        _at_least("--window-days", self.window_days, 1)
        _at_least("--days", self.days, self.window_days + 2)
        if self.days > (LAST_DAY - start).days + 1:
            raise InputError(
                f"--start {start} with --days {self.days:,} runs past {LAST_DAY}, the last "
                f"accepted date ({RANGE_TEXT})"
            )
        _at_least("--event-types", self.event_types, 1)
        if self.event_types > MAX_EVENT_TYPES:
            raise InputError(f"--event-types must be at most {MAX_EVENT_TYPES}")
        _at_least("--spammers", self.spammers, 0)
        if self.spammers > self.users:
            raise InputError("--spammers cannot exceed --users")
        _at_least("--spam-cap", self.spam_cap, 1)
        if self.spam_cap > MAX_SPAM_CAP:
            raise InputError(f"--spam-cap must be at most {MAX_SPAM_CAP:,}")
        _at_least("--max-late-hours", self.max_late_hours, 1)
        _at_least("chunk_records", self.chunk_records, 100)
        if self.seed < 0 or self.seed >= 2**63:
            raise InputError("--seed must be in [0, 2**63)")
        for name, value, top in (
            ("--corrupt-share", self.corrupt_share, 1.0),
            ("--duplicate-share", self.duplicate_share, 0.5),
            ("--late-share", self.late_share, 1.0),
            ("--segment-share", self.segment_share, 1.0),
            ("--trigger-share", self.trigger_share, 1.0),
            ("--skew", self.skew, 1.0),
            ("--cross-group-share", self.cross_group_share, 1.0),
        ):
            if not (0.0 <= value <= top):
                raise InputError(f"{name} must be in [0, {top}], got {value}")
        return self


def _at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise InputError(f"{name} must be at least {low}, got {value}")
