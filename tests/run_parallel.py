"""Run the test suite as parallel pytest processes, one folder of tests per process.

    .venv/bin/python -m tests.run_parallel [--workers N]

Each folder (every folder of ``tests/integration``, and ``tests/unit``) runs in a pytest
process of its own, with its own session fixtures (a Spark session, Flink clusters, brokers),
so no two processes share a fixture, a port or a temporary folder. ``--workers`` processes
(default 2: the suite's budget is 45 minutes on 2 cores) take the folders in the order of
:data:`LONGEST_FIRST`, each taking the next one as soon as it is free; folders that list does
not name come after it, alphabetically. The engines' tests are mostly CPU-bound, so two
processes on 2 cores gain about 1.35x over one (a clean clone's `make test`: 2523 s, against
3395 s sequential in CI).

A folder's report is printed whole when it ends (no interleaved lines); the run fails if any
folder fails. The slowest tests of each folder are listed in its report.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Seconds per folder in a clean clone's `make test` on 2 cores, two at a time (2026-12-07, an
# Intel Xeon machine whose speed moved by 20-30% within the day): streaming 1650, metric_types
# 1464, airflow 936, alerts 245, metadata 190, unit 139, archive 110, docs 98, results 93,
# framework 71, config 5; 2559 s from the clone to the end (2117 s on the same machine hours
# before; 2692 s on a slow AMD EPYC machine).
LONGEST_FIRST = (
    "tests/integration/streaming",
    "tests/integration/metric_types",
    "tests/integration/airflow",
    "tests/integration/alerts",
    "tests/integration/metadata",
    "tests/unit",
    "tests/integration/archive",
    "tests/integration/results",
    "tests/integration/docs",
    "tests/integration/framework",
)
NO_TESTS = 5  # pytest's exit code when a folder has no test (all deselected)


def folders() -> list[str]:
    found = {str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "integration").iterdir()
             if p.is_dir() and any(p.glob("test_*.py"))}  # fmt: skip
    found.add("tests/unit")
    known = [f for f in LONGEST_FIRST if f in found]
    return known + sorted(found - set(known))


def run(
    folder: str, pytest_args: list[str], logs: Path, started: float
) -> tuple[str, int, float, str]:
    """Run ``folder``'s tests; its name, pytest's exit code, the seconds and the report."""
    t0 = time.monotonic()
    say(f"[{clock(started)}] start {folder}")
    out = logs / f"{folder.replace('/', '_')}.log"
    with out.open("w") as log:
        code = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--durations=10",
             *pytest_args, folder],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False,
        ).returncode  # fmt: skip
    return folder, code, time.monotonic() - t0, out.read_text()


_print = threading.Lock()


def say(line: str) -> None:
    with _print:
        print(line, flush=True)


def clock(started: float) -> str:
    return time.strftime("%M:%S", time.gmtime(time.monotonic() - started))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    args, pytest_args = parser.parse_known_args()
    started = time.monotonic()
    failed: list[str] = []
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="udf-tests-") as logs, \
            ThreadPoolExecutor(args.workers) as pool:  # fmt: skip
        jobs = [pool.submit(run, f, pytest_args, Path(logs), started) for f in folders()]
        for job in as_completed(jobs):
            folder, code, seconds, report = job.result()
            times[folder] = seconds
            ok = code in (0, NO_TESTS)
            if not ok:
                failed.append(folder)
            say(f"\n===== [{clock(started)}] {folder}: {'passed' if ok else 'FAILED'} "
                f"in {seconds:.0f} s =====\n{report}")  # fmt: skip
    say(
        f"===== all folders in {time.monotonic() - started:.0f} s with {args.workers} workers: "
        + ", ".join(f"{f} {s:.0f} s" for f, s in times.items())
    )
    if failed:
        say("FAILED folders: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
