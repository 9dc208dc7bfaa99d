"""A worker that dies mid-batch: run one pipeline DAG run and SIGKILL this process in compute.

Usage: ``python die_in_compute.py DAG_ID YYYY-MM-DD MARKER`` (the environment names the
Airflow and platform databases). The first ``compute_batch`` task takes its leases, moves
its metric-days to ``in_progress``, starts heartbeating and calls ``compute()``; at that
moment this process writes the batch to MARKER and kills itself with SIGKILL, as an OOM
killer or a lost node would: no ``finally`` runs, no lease is released, nothing is marked
failed. The parent test then plays the scheduler (the heartbeat timeout fails the task
instance) and lets the retry finish the run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import date
from pathlib import Path
from typing import Any

import metric_types.compute
from tests.integration.airflow import harness


def main(dag_id: str, ds: str, marker: str) -> None:
    def die(home: Any, metric_type: str, dates: Any, **kwargs: Any) -> None:
        batch = {"ds": [d.isoformat() for d in dates], "metrics": kwargs.get("metrics")}
        Path(marker).write_text(json.dumps(batch))
        os.kill(os.getpid(), signal.SIGKILL)

    metric_types.compute.compute = die  # what compute_batch calls (imported when called)
    bag = harness.sync_dags()
    harness.run_dag(bag.get_dag(dag_id), ds=date.fromisoformat(ds))
    sys.exit("the run finished: the worker was supposed to die in compute")


if __name__ == "__main__":
    main(*sys.argv[1:4])
