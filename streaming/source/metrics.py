"""The source's Flink metrics, read back over Flink's REST API.

With ``stream.source.metrics`` the gate (:mod:`streaming.source.gate`) counts, per topic,
``udf_source.<topic>.records`` and ``udf_source.<topic>.unreadable`` (no readable event
time). Flink names a user metric after the operator that holds it
(``<subtask>.<operator>.udf_source.events.records``); :func:`source_counters` finds the
gates' metrics in every vertex of a job and sums them over the subtasks, as Flink's
``/jobs/:job/vertices/:vertex/subtasks/metrics?agg=sum`` does. Any REST endpoint works: a
session cluster's (``udf flink up``, :mod:`streaming.cluster`) or a local mini-cluster's
(``rest.port``).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

from udf.errors import UdfError

COUNTERS = ("records", "unreadable")


class MetricsError(UdfError):
    """Flink's REST API did not answer as expected."""


def source_counters(rest_url: str, job_id: str) -> dict[str, dict[str, int]]:
    """Per topic, the gate's counters summed over subtasks: ``{"events": {"records": n, ...}}``."""
    out: dict[str, dict[str, int]] = {}
    for vertex in _get(rest_url, f"/jobs/{job_id}")["vertices"]:
        path = f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics"
        names = [m["id"] for m in _get(rest_url, path)]
        ours = [n for n in names if _topic_counter(n) is not None]
        if not ours:
            continue
        query = urllib.parse.urlencode({"get": ",".join(ours), "agg": "sum"})
        for metric in _get(rest_url, f"{path}?{query}"):
            topic, counter = _topic_counter(metric["id"])  # type: ignore[misc]
            totals = out.setdefault(topic, dict.fromkeys(COUNTERS, 0))
            totals[counter] += int(float(metric["sum"]))
    return out


def _topic_counter(name: str) -> tuple[str, str] | None:
    """``(topic, counter)`` of a metric named ``...udf_source.<topic>.<counter>``."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[-3] == "udf_source" and parts[-1] in COUNTERS:
        return parts[-2], parts[-1]
    return None


def _get(rest_url: str, path: str) -> Any:
    try:
        with urllib.request.urlopen(rest_url.rstrip("/") + path, timeout=10) as response:
            return json.loads(response.read().decode() or "null")
    except (OSError, ValueError) as exc:
        raise MetricsError(f"Flink REST {rest_url}{path}: {exc}") from None
