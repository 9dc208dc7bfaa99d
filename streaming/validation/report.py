"""A validation report for people: the summary line, the check table, the violations."""

from __future__ import annotations

from typing import Any

from streaming.validation.rules import Report

LABELS = {
    "never_decreases": "stream counts never decrease within a period",
    "resets_after_reramp": "a re-ramp after the window starts from zero",
    "agrees_with_batch": "stream and batch differ by at most the threshold",
}


def percent(x: float) -> str:
    """A relative difference for people: ``2.94%``; a tiny one (floating-point sums) as is."""
    return f"{x:.2%}" if x == 0 or x >= 1e-4 else f"{x:.2g}"


def subject_of(report: Report) -> str:
    verdict = "passed" if report.passed else f"FAILED: {report.violation_count} violation(s)"
    return f"[udf] streaming validation of {report.day} {verdict}"


def summary(report: Report) -> str:
    verdict = "passed" if report.passed else f"FAILED with {report.violation_count} violation(s)"
    at = f" ({report.max_difference_at})" if report.max_difference_at else ""
    return (
        f"validation of {report.day} {verdict}: {report.stream_rows} stream and "
        f"{report.batch_rows} batch rows; largest stream-batch difference "
        f"{percent(report.max_difference)}{at}; threshold {report.threshold:.2%}"
    )


def check_rows(report: Report) -> list[dict[str, Any]]:
    return [
        {
            "rule": c.rule,
            "scenario": c.scenario,
            "experiments": c.experiments,
            "rows checked": c.rows,
            "violations": c.violations,
            "largest difference": percent(c.max_difference),
            "result": "n/a" if not c.applies else ("FAIL" if c.violations else "ok"),
        }
        for c in report.checks
    ]


def violation_rows(report: Report) -> list[dict[str, Any]]:
    return [{"rule": v.rule, "scenario": v.scenario, "what": v.message} for v in report.violations]
