"""Writers of results in their own OS processes, for the tests of concurrent writers.

Each runs in a worker of a ``spawn`` pool (:func:`pool`) and opens the store the way the
platform does, with ``results.stores.open_store(home, settings)`` and nothing more, so what
the tests see is what two Airflow workers writing the same day would see.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

from tests.support.result_rows import make_row, slice_of, slice_rows

_start: Any = None  # the pool's barrier: every task of a round starts together


def pool(processes: int) -> Pool:
    """``processes`` spawned workers; each task waits until ``processes`` tasks run at once,
    so a round of that many tasks runs in as many distinct processes, side by side."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    return context.Pool(processes, initializer=_init, initargs=(barrier,))


def _init(barrier: threading.Barrier) -> None:
    global _start
    _start = barrier
    for name in [n for n in os.environ if n.startswith("UDF_")]:
        del os.environ[name]  # the store is what the test's settings say, nothing else


def write(home: str, settings: dict[str, Any], metric: str, rounds: int, upsert: bool) -> int:
    """Replace the batch slice of ``metric`` (and with ``upsert`` also upsert its stream rows
    and a row every writer shares) ``rounds`` times, round ``r`` writing ``computed_at=r``.
    Returns this process's id."""
    from results.stores import open_store
    from udf.home import Home
    from udf.settings import Settings

    _start.wait(timeout=60)
    with open_store(Home(Path(home)), Settings.model_validate(settings)) as store:
        for r in range(rounds):
            if upsert:
                shared = make_row(source="stream", metric="shared", computed_at=r,
                                  volume=os.getpid())  # fmt: skip
                store.upsert([*slice_rows((metric,), source="stream", computed_at=r), shared])
            store.replace(slice_of((metric,)), slice_rows((metric,), computed_at=r))
    return os.getpid()
