"""Deterministic synthetic workload: experiments, ramps, activations and events.

The generator writes the input files that ``udf ramps import`` and ``udf data import`` read
(the contract §1 and §2): a ramp-history CSV and one JSONL file per topic and arrival day,
with duplicates, late and out-of-order arrivals, spammers over the hourly cap and a chosen
share of corrupt lines, plus a ``manifest.json`` with exact counts. Same parameters give
byte-identical output. See ``docs/workload.md``.
"""

from __future__ import annotations

from typing import Any

from udf.workload.params import WorkloadParams

__all__ = ["WorkloadParams", "generate"]


def __getattr__(name: str) -> Any:
    # ``generate`` pulls in numpy; import it on first use so the CLI starts fast.
    if name == "generate":
        from udf.workload.generator import generate

        return generate
    raise AttributeError(name)
