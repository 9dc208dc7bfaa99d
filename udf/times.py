"""The time range the platform accepts: one rule for records, ramps, seals, backfills, workloads.

Event times outside 2000-01-01 .. 2099-12-31 (UTC) are mistakes, not history: a ``ts`` of 0
(seconds mistaken for a missing value), ``ts`` in seconds or microseconds, year 3000. A record
outside the range is corrupt (``out_of_range``, dead-lettered); a ramp, a date on the command
line or a generated workload outside it is refused with this range in the message
(docs/archive.md, "Accepted times").
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from udf.errors import InputError

FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
TS_MIN = 946_684_800_000  # FIRST_DAY at 00:00Z, epoch ms
TS_MAX = 4_102_444_800_000  # the day after LAST_DAY at 00:00Z (exclusive)
RANGE_TEXT = f"{FIRST_DAY} to {LAST_DAY} UTC"


def check_day(day: date, option: str) -> date:
    """``day`` if it is in the accepted range; an :class:`InputError` naming ``option`` if not."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InputError(f"{option} {day.isoformat()} is outside the accepted dates, {RANGE_TEXT}")
    return day


def parse_day(text: str, option: str) -> date:
    """A ``YYYY-MM-DD`` option value in the accepted range."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: expected a date YYYY-MM-DD") from None
    return check_day(day, option)


def today() -> date:
    """Today's UTC date (the newest day that may have started)."""
    return datetime.now(UTC).date()
