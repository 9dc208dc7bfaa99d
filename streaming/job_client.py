"""A started Flink job, through PyFlink's ``JobClient``: its status, why it failed or did not
start, and stopping it with a savepoint (with or without a drain).

Shared by :mod:`streaming.runner` (one job per mode) and :mod:`streaming.apart` (the three
jobs apart). A local job's cluster shuts down with its job, so a status is asked for first
and its result after.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from udf.logging import get_logger

log = get_logger(__name__)


def status(client: Any) -> str:
    """The job's status; a local cluster shuts down with its job: then ask for the result."""
    try:
        return str(client.get_job_status().result()).split(".")[-1]
    except Exception:
        try:
            client.get_job_execution_result().result()
        except Exception:
            return "FAILED"
        return "FINISHED"


def failure(client: Any) -> str:
    """Why a failed job failed: the innermost cause Flink gives."""
    try:
        client.get_job_execution_result().result()
    except Exception as exc:
        return innermost(exc)
    return "unknown cause"


def stop_with_savepoint(client: Any, target: str) -> str:
    """``JobClient.stop_with_savepoint``: PyFlink 2.3's wrapper calls the Java method without
    the savepoint format it now requires, so the Java client is called directly."""
    from pyflink.java_gateway import get_gateway

    formats = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType
    future = client._j_job_client.stopWithSavepoint(False, target, formats.CANONICAL)
    return str(future.get())


def drain(client: Any, target: str) -> None:
    """Stop with a savepoint after the end of event time (every timer fires, every key flushes)."""
    from pyflink.java_gateway import get_gateway

    formats = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType
    try:
        client._j_job_client.stopWithSavepoint(True, target, formats.CANONICAL).get()
    except Exception as exc:  # the job's status says what happened; the watcher reports it
        log.warning("stream.drain_failed", error=str(exc).splitlines()[0])


def drain_in_background(client: Any, target: str) -> threading.Thread:
    """:func:`drain` in a daemon thread (a drain waits for its savepoint); the thread, so that
    a watcher can see it ended and try again while the job still runs."""
    thread = threading.Thread(target=drain, args=(client, target), daemon=True)
    thread.start()
    return thread


def not_started(exc: Exception, snapshot: Path | None) -> str:
    """Why the job could not start, for a person: the innermost cause Flink gives, or, for a
    checkpoint with the state of operators the pipeline no longer has (taken by an earlier
    version whose state layout changed), what to do about it."""
    cause = innermost(exc)
    if snapshot is not None and "Cannot map checkpoint/savepoint state" in cause:
        return (
            f"cannot resume from {snapshot.name} ({snapshot}): it holds the state of operators "
            "this version of the pipeline does not have (it was taken by an earlier version); "
            "start again with --fresh"
        )
    return f"the Flink job could not be started: {cause}"


def other_version(snapshot: Path, why: str) -> str:
    """A snapshot this version of the pipeline refuses to resume from, and what to do."""
    return (
        f"cannot resume from {snapshot.name} ({snapshot}): it was taken by another version of "
        f"the pipeline ({why}: a new version of udf, or settings that change the job's "
        "operators); start again with --fresh"
    )


def innermost(exc: Exception) -> str:
    """The last ``Caused by:`` of a Java exception's text (else its first line)."""
    lines = [line.strip() for line in str(exc).splitlines() if "Caused by:" in line]
    return lines[-1].removeprefix("Caused by:").strip() if lines else str(exc).splitlines()[0]
