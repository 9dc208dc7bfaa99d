"""The three rules the stream's ``aggregated`` rows must keep, checked per ramp scenario.

1. ``never_decreases``: within a period the stream's counts never go down: a whole-group
   stream row of date ``D`` holds at least the counts of the same (experiment, group,
   metric, period) on ``D - 1``. Rows of one segment value are not checked: a user's value
   is the one on their first counted event that has the field (metrics.md §7), so a user
   without one yesterday moves from ``""`` to a value today, and a value's counts may
   legitimately go down. Nor are rows with users in two groups (``multiple_groups``) of an
   experiment that leaves such users out (``analysis.multiple_groups: exclude``): a user
   exposed to a second group today is left out from today on, with their counts.
2. ``resets_after_reramp``: a re-ramp after the window opens a new period whose counts start
   from zero: a stream row of any period after a group's first holds no more than the batch,
   which counts that period from zero, gives for it (within the threshold). A first period
   has nothing before it to carry, so the rule does not apply to it.
3. ``agrees_with_batch``: every number of every row (counts and sums) differs from the batch's
   by at most ``threshold`` (relative); a row on one side only differs by 100%.

Each rule is checked separately for each scenario of :func:`scenario_of`: experiments with a
single ramp, with re-ramps inside the window (one period, extended) and with re-ramps after
it (several periods). The expected values are never the stream's own: the batch recomputes
the day from the archive.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from metadata.periods import DAY_MS, aggregation_periods
from results.schema import ResultRow

RULES = ("never_decreases", "resets_after_reramp", "agrees_with_batch")
SCENARIOS = ("single", "reramp_in", "reramp_after")
COUNTS = ("exposed", "volume", "propensity", "n")
NUMBERS = (*COUNTS, "sum", "sum_sq", "den_sum", "den_sum_sq", "sum_xy")
_ROW_KEY = ("experiment", "group", "metric", "period_start", "day_in", "segment", "segment_value")


def scenario_of(ramps_by_group: Iterable[Sequence[int]], window: int, through_ms: int) -> str:
    """``reramp_after`` when a group's ramps (up to ``through_ms``) open several periods,
    ``reramp_in`` when a period holds several ramps, else ``single``."""
    scenario = "single"
    for ramps in ramps_by_group:
        periods = aggregation_periods([r for r in ramps if r < through_ms], window)
        if len(periods) > 1:
            return "reramp_after"
        if any(len(p.ramps) > 1 for p in periods):
            scenario = "reramp_in"
    return scenario


@dataclass(frozen=True)
class Violation:
    rule: str
    scenario: str
    experiment: str
    group: str
    metric: str
    period_start: int
    segment: str
    segment_value: str
    field: str
    stream: float | None
    expected: float | None  # the previous day's stream number (rule 1) or the batch's
    difference: float  # relative
    message: str


@dataclass
class Check:
    """One rule over one scenario's experiments."""

    rule: str
    scenario: str
    experiments: int = 0
    rows: int = 0
    violations: int = 0
    max_difference: float = 0.0
    applies: bool = True


@dataclass
class Report:
    day: str
    threshold: float
    checks: list[Check]
    violations: list[Violation] = field(default_factory=list)
    violation_count: int = 0
    max_difference: float = 0.0
    max_difference_at: str = ""
    stream_rows: int = 0
    batch_rows: int = 0

    @property
    def passed(self) -> bool:
        return self.violation_count == 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        return out


def difference(stream: float | None, expected: float | None) -> float:
    """``|s - e| / |e|``; 0 when both are missing or equal, 1 (100%) when one side is missing
    or the expected number is 0."""
    if stream is None and expected is None:
        return 0.0
    if stream is None or expected is None:
        return 1.0
    if stream == expected:
        return 0.0
    if expected == 0:
        return 1.0
    return abs(stream - expected) / abs(expected)


def _key(row: ResultRow) -> tuple[Any, ...]:
    return tuple(getattr(row, name) for name in _ROW_KEY)


def _where(row: ResultRow) -> str:
    segment = f" {row.segment}={row.segment_value!r}" if row.segment else ""
    return f"{row.experiment}/{row.group} {row.metric} period {_day(row.period_start)}{segment}"


def _day(ms: int) -> str:
    return (date(1970, 1, 1) + timedelta(milliseconds=ms)).isoformat()


class _Checker:
    def __init__(self, day: date, threshold: float, scenarios: Mapping[str, str], keep: int):
        self.report = Report(
            day.isoformat(), threshold,
            [Check(rule, s) for rule in RULES for s in SCENARIOS],
        )  # fmt: skip
        self.scenarios = scenarios
        self.keep = keep
        self._checks = {(c.rule, c.scenario): c for c in self.report.checks}
        self._experiments: dict[tuple[str, str], set[str]] = {}

    def scenario(self, experiment: str) -> str:
        return self.scenarios.get(experiment, "single")

    def check(self, rule: str, row: ResultRow) -> Check:
        scenario = self.scenario(row.experiment)
        self._experiments.setdefault((rule, scenario), set()).add(row.experiment)
        check = self._checks[rule, scenario]
        check.rows += 1
        return check

    def saw(self, check: Check, row: ResultRow, name: str, diff: float) -> None:
        check.max_difference = max(check.max_difference, diff)
        if check.rule == "agrees_with_batch" and diff > self.report.max_difference:
            self.report.max_difference = diff
            self.report.max_difference_at = f"{_where(row)} {name}"

    def violate(
        self, check: Check, row: ResultRow, name: str, stream: float | None,
        expected: float | None, diff: float, message: str,
    ) -> None:  # fmt: skip
        check.violations += 1
        self.report.violation_count += 1
        if len(self.report.violations) < self.keep:
            self.report.violations.append(
                Violation(
                    check.rule, check.scenario, row.experiment, row.group, row.metric,
                    row.period_start, row.segment, row.segment_value, name, stream, expected,
                    diff, message,
                )
            )  # fmt: skip

    def finish(self) -> Report:
        for (rule, scenario), names in self._experiments.items():
            self._checks[rule, scenario].experiments = len(names)
        return self.report


def validate(
    day: date,
    stream: Sequence[ResultRow],
    batch: Sequence[ResultRow],
    *,
    scenarios: Mapping[str, str],
    first_periods: Mapping[tuple[str, str], int],
    threshold: float,
    keep: int = 50,
    excluding: Collection[str] = (),
) -> Report:
    """Check the three rules on ``day``'s rows.

    ``stream`` holds the stream rows of ``day`` and of the day before (rule 1), ``batch``
    the batch rows of ``day``; ``scenarios`` maps each experiment to its scenario and
    ``first_periods`` each (experiment, group) to its first period's start; ``excluding``
    names the experiments that leave out users in two groups. Only the first ``keep``
    violations are listed; all are counted.
    """
    today, before = day.isoformat(), (day - timedelta(days=1)).isoformat()
    checker = _Checker(day, threshold, scenarios, keep)
    now = {_key(r): r for r in stream if r.date == today}
    previous = {_key(r): r for r in stream if r.date == before}
    expected = {_key(r): r for r in batch if r.date == today}
    checker.report.stream_rows, checker.report.batch_rows = len(now), len(expected)

    for key, row in sorted(now.items()):
        old = previous.get(key)
        if old is None or row.segment != "":
            continue
        if row.experiment in excluding and row.multiple_groups > 0:
            continue  # users who saw a second group today left with their counts
        check = checker.check("never_decreases", row)
        for name in COUNTS:
            a, b = getattr(old, name), getattr(row, name)
            if b < a:
                diff = difference(b, a)
                checker.saw(check, row, name, diff)
                checker.violate(
                    check, row, name, b, a, diff,
                    f"{_where(row)}: stream {name} went down from {a} on {before} to {b} on "
                    f"{today}",
                )  # fmt: skip

    for key, row in sorted(now.items()):
        first = first_periods.get((row.experiment, row.group))
        if first is None or row.period_start <= first:
            continue
        check = checker.check("resets_after_reramp", row)
        zero = expected.get(key)
        for name in COUNTS:
            s = getattr(row, name)
            e = getattr(zero, name) if zero is not None else 0
            if s <= e:
                continue
            diff = difference(s, e)
            checker.saw(check, row, name, diff)
            if diff > threshold:
                checker.violate(
                    check, row, name, s, e, diff,
                    f"{_where(row)}: the period after the re-ramp did not start from zero: "
                    f"stream {name} {s} on {today}, counting from the re-ramp gives {e}",
                )  # fmt: skip

    for key in sorted(now.keys() | expected.keys()):
        s_row, b_row = now.get(key), expected.get(key)
        if s_row is None or b_row is None:
            only = s_row or b_row
            assert only is not None
            check = checker.check("agrees_with_batch", only)
            side, other = ("stream", "batch") if b_row is None else ("batch", "stream")
            checker.saw(check, only, "row", 1.0)
            checker.violate(
                check, only, "row", None, None, 1.0,
                f"{_where(only)}: a {side} row on {today} with no {other} row",
            )  # fmt: skip
            continue
        row = s_row
        check = checker.check("agrees_with_batch", row)
        for name in NUMBERS:
            s, e = getattr(s_row, name), getattr(b_row, name)
            diff = difference(s, e)
            checker.saw(check, row, name, diff)
            if diff > threshold:
                checker.violate(
                    check, row, name, s, e, diff,
                    f"{_where(row)}: stream {name} {s} vs batch {e} on {today} "
                    f"({diff:.2%} > {threshold:.2%})",
                )  # fmt: skip

    report = checker.finish()
    for c in report.checks:
        c.applies = not (c.rule == "resets_after_reramp" and c.scenario != "reramp_after")
    return report


def first_period_starts(
    groups: Mapping[tuple[str, str], Sequence[int]], window: int
) -> dict[tuple[str, str], int]:
    """Each group's first period start from its ramps."""
    out = {}
    for key, ramps in groups.items():
        periods = aggregation_periods(ramps, window)
        if periods:
            out[key] = periods[0].start
    return out


def end_of(day: date) -> int:
    """The epoch ms at the end of ``day`` (UTC)."""
    return ((day - date(1970, 1, 1)).days + 1) * DAY_MS
