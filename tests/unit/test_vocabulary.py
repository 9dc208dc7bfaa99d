"""One import-light source for the metric types, the run states and the contract's defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_cli_lists_them_without_importing_sqlalchemy_or_pydantic() -> None:
    script = (
        "import json, sys\n"
        "import udf.cli.backfill, udf.cli.compute, udf.cli.status\n"
        "heavy = ('sqlalchemy', 'pydantic', 'metadata', 'airflow')\n"
        "print(json.dumps({'choices': udf.cli.status.command.params[1].type.choices,"
        " 'loaded': [m for m in heavy if m in sys.modules]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout)
    assert found["loaded"] == []
    assert found["choices"] == ["aggregated", "calendar_day", "days_in", "custom"]


def test_every_reader_takes_them_from_the_vocabulary() -> None:
    from metadata.models import MetricRun
    from metadata.periods import window_ms
    from metric_types import registry
    from udf.settings import Settings
    from udf.workload.params import WorkloadParams

    constraint = next(
        c for c in MetricRun.__table__.constraints if c.name in ("state", "ck_metric_runs_state")
    )
    assert "'not_selected'" in str(constraint.sqltext)
    assert {name: registry.get(name).name for name in registry.NAMES} == {
        "aggregated": "aggregated", "calendar_day": "calendar_day",
        "days_in": "days_in", "custom": "custom",
    }  # fmt: skip
    # The contract's defaults: W = 3 days, X = 1,000 events per user and hour.
    assert (Settings().window_days, Settings().spam_cap) == (3, 1000)
    assert (WorkloadParams().window_days, WorkloadParams().spam_cap) == (3, 1000)
    assert window_ms() == 3 * 86_400_000
