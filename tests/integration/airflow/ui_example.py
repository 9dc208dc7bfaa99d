"""A small experiment in a test home for the UI views: catalog, ramps, run states, results.

Per-user click counts are drawn with numpy for three days; their sufficient statistics go
through the platform's comparison code (:func:`results.comparisons.compare_groups`, the
batch pipeline's last step) into the home's embedded results store, as batch rows and, for
the last day, as stream rows. Treatment has 800 users to control's 1,000 on a 50/50 split:
a sample-ratio mismatch. :func:`table` reads an HTML table the way a test wants it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import numpy as np
from click.testing import CliRunner

EXPERIMENT = "exp_ui"
RAMP = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = [date(2026, 1, 1) + timedelta(days=i) for i in range(3)]
USERS = {"control": 1000, "treatment": 800}
CATALOG = f"""
metrics:
  - name: clicks
    type: aggregated
    event_type: click
    owners: [clicks-owner@example.com]
    sla_hours: 6
  - name: searches
    type: aggregated
    event_type: search
    owners: [search-owner@example.com]
segments:
  - name: country
    field: country
experiments:
  - experiment: {EXPERIMENT}
    metrics: [clicks, searches]
    segments: [country]
    analysis:
      correction: holm
      sequential: obrien_fleming
      looks: 3
      bayesian: true
"""


@dataclass
class Example:
    raw: dict[tuple[str, str, str], np.ndarray]  # (source, day, group) -> per-user counts
    rows: list[Any]  # every ResultRow written


def build(home: Any) -> Example:
    from metadata.repository import MetadataStore
    from results.analysis import look_of
    from results.comparisons import compare_groups
    from results.schema import ResultRow, Slice
    from results.stores import open_store
    from udf.cli import main
    from udf.settings import load_settings

    ramp_ms = int(RAMP.timestamp() * 1000)
    ramps = home.root / "ramps.csv"
    ramps.write_text(
        "experiment,group,ramp_ts,allocation\n"
        + "".join(f"{EXPERIMENT},{g},{ramp_ms},0.5\n" for g in USERS)
    )
    catalog = home.root / "catalog.yaml"
    catalog.write_text(CATALOG)
    for args in (["ramps", "import", str(ramps)], ["config", "load", str(catalog)]):
        done = CliRunner().invoke(main, args, catch_exceptions=False)
        assert done.exit_code == 0, done.output

    rng = np.random.default_rng(7)
    raw: dict[tuple[str, str, str], np.ndarray] = {}
    written = []
    analysis = {EXPERIMENT: {"correction": "holm", "sequential": "obrien_fleming", "looks": 3,
                             "bayesian": True}}  # fmt: skip
    with open_store(home, load_settings(home)) as store:
        for source in ("batch", "stream"):
            for day in DAYS if source == "batch" else DAYS[-1:]:
                rows = []
                for group, users in USERS.items():
                    counts = rng.poisson(2.0 + 0.2 * (group == "treatment"), users)
                    raw[(source, day.isoformat(), group)] = counts
                    for segment, value, part in (("", "", counts), ("country", "us", counts[::2])):
                        rows.append(ResultRow(
                            experiment=EXPERIMENT, group=group, metric="clicks",
                            metric_type="aggregated", period_start=ramp_ms,
                            period_end=ramp_ms + 3 * 86_400_000, date=day.isoformat(), day_in=0,
                            segment=segment, segment_value=value, exposed=len(part),
                            volume=int(part.sum()), propensity=int((part > 0).sum()),
                            n=len(part), sum=float(part.sum()),
                            sum_sq=float((part.astype(float) ** 2).sum()),
                            look=look_of(day.isoformat(), ramp_ms), source=source,
                            computed_at=1_767_312_000_000,
                        ))  # fmt: skip
                rows = compare_groups(rows, frozenset({(EXPERIMENT, "control")}), analysis)
                store.replace(Slice(source, "aggregated", day, ("clicks",)), rows)
                written += rows

    with MetadataStore.for_home(home) as meta:
        meta.set_run_state("clicks", DAYS[0], "done", "computed")
        meta.set_run_state("clicks", DAYS[1], "failed", "spark died")
        meta.set_run_state("searches", DAYS[1], "waiting_on_source", "events late")
        meta.set_run_state("clicks", DAYS[2], "done", "computed", EXPERIMENT)
    return Example(raw, written)


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self._table: str | None = None
        self._row: dict[str, Any] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = {"attrs": a, "cells": [], "values": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._row["values"].append(a.get("data-value"))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None


def table(html: str, table_id: str) -> list[dict[str, Any]]:
    """The rows of table ``table_id``: header first; each with ``attrs``, ``cells``, ``values``
    (the cells' ``data-value``)."""
    parser = _Tables()
    parser.feed(html)
    return parser.tables[table_id]
