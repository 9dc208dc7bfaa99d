"""Validation reports: one row per run of ``udf validate`` (or the daily validation DAG)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from metadata._base import StoreBase
from metadata.models import ValidationReport
from metadata.records import ValidationReportInfo


class ValidationMixin(StoreBase):
    def record_validation(
        self,
        day: date,
        *,
        passed: bool,
        violations: int,
        threshold: float,
        max_difference: float,
        report: dict[str, Any],
    ) -> int:
        """Store one validation report; returns its id."""

        def work(s: Any) -> int:
            row = ValidationReport(
                day=day, passed=passed, violations=violations, threshold=threshold,
                max_difference=max_difference, report=report, created_at=self._clock(),
            )  # fmt: skip
            s.add(row)
            s.flush()
            return row.id

        return self._retrying(work, "cannot record the validation report")

    def validation_reports(
        self, *, day: date | None = None, limit: int | None = None
    ) -> list[ValidationReportInfo]:
        """The stored reports, newest first (of ``day`` only, when given)."""
        query = select(ValidationReport).order_by(ValidationReport.id.desc())
        if day is not None:
            query = query.where(ValidationReport.day == day)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as s:
            return [
                ValidationReportInfo(
                    r.id,
                    r.day,
                    r.passed,
                    r.violations,
                    r.threshold,
                    r.max_difference,
                    dict(r.report),
                    r.created_at,
                )
                for r in s.scalars(query)
            ]
