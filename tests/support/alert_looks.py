"""Looks as the stream makes them: cumulative result rows of an experiment as users arrive.

Per-user values are drawn once with numpy (fixed seed); look ``k`` holds the sufficient
statistics of the first ``k * users_per_look`` users of each group, as ``aggregated`` rows
with ``source = stream``, and the comparison columns filled by ``compare_groups`` (what the
stream's sink writes). Two metrics: ``clicks`` (a count per user, Poisson) and ``ctr`` (a
ratio: clicks over impressions). ``effect`` scales the treatment's mean clicks and
impressions (``-0.2`` is a 20% drop) and leaves its click-through rate alone.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from metadata.records import RampRow
from metadata.repository import MetadataStore
from results.comparisons import compare_groups
from results.schema import ResultRow
from udf.config.alerts import AlertSettings
from udf.config.catalog import CatalogFile

EXPERIMENT = "exp_alert"
START = datetime(2026, 1, 6, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
WINDOW_MS = 3 * 86_400_000
OWNER = "ana@example.com"
CONTROLS = frozenset({(EXPERIMENT, "control")})


@dataclass(frozen=True)
class Users:
    """Per-user values of one group: impressions, and clicks on them (a quarter, binomially)."""

    clicks: np.ndarray
    impressions: np.ndarray

    @classmethod
    def draw(cls, n: int, mean_clicks: float, rng: np.random.Generator) -> Users:
        impressions = rng.poisson(4 * mean_clicks, n)
        clicks = rng.binomial(impressions, 0.25)  # Poisson(mean_clicks) clicks; CTR 0.25
        return cls(clicks.astype(float), impressions.astype(float))


def stream_looks(
    effect: float = -0.2,
    *,
    looks: int = 20,
    users_per_look: int = 150,
    seed: int = 20260106,
    mean_clicks: float = 3.0,
) -> list[list[ResultRow]]:
    """``looks`` flushes of stream rows (each cumulative), for control and treatment."""
    rng = np.random.default_rng(seed)
    total = looks * users_per_look
    users = {
        "control": Users.draw(total, mean_clicks, rng),
        "treatment": Users.draw(total, mean_clicks * (1 + effect), rng),
    }
    flushes = []
    for k in range(1, looks + 1):
        n = k * users_per_look
        # Ten looks on the first day, the rest on the second (rows through each date).
        day = (START.date() + timedelta(days=0 if k <= looks // 2 else 1)).isoformat()
        rows = []
        for group, u in users.items():
            clicks, impressions = u.clicks[:n], u.impressions[:n]
            common = _common(group, day, n, clicks, computed_at=START_MS + k * 300_000)
            rows.append(ResultRow(metric="clicks", **common))
            rows.append(
                ResultRow(
                    metric="ctr",
                    **common,
                    den_sum=float(impressions.sum()),
                    den_sum_sq=float((impressions**2).sum()),
                    sum_xy=float((clicks * impressions).sum()),
                )
            )
        flushes.append(compare_groups(rows, CONTROLS, {}))
    return flushes


def _common(group: str, day: str, n: int, clicks: np.ndarray, computed_at: int) -> dict:
    return dict(
        experiment=EXPERIMENT,
        group=group,
        metric_type="aggregated",
        period_start=START_MS,
        period_end=START_MS + WINDOW_MS,
        date=day,
        day_in=0,
        segment="",
        segment_value="",
        exposed=n,
        volume=int(clicks.sum()),
        propensity=int((clicks > 0).sum()),
        n=n,
        sum=float(clicks.sum()),
        sum_sq=float((clicks**2).sum()),
        source="stream",
        computed_at=computed_at,
    )


def catalog(
    clicks_alert: dict | None = None, ctr_alert: dict | None = None, **selection: object
) -> CatalogFile:
    """``clicks`` (owned by :data:`OWNER`, watched for a decrease) and ``ctr`` (a ratio)."""
    return CatalogFile.model_validate(
        {
            "metrics": [
                {
                    "name": "clicks",
                    "type": "aggregated",
                    "event_type": "click",
                    "owners": [OWNER],
                    "alert": clicks_alert or {"direction": "decrease"},
                },
                {
                    "name": "ctr",
                    "type": "aggregated",
                    "owners": [OWNER],
                    "ratio": {
                        "numerator": {"event_type": "click"},
                        "denominator": {"event_type": "impression"},
                    },
                    **({"alert": ctr_alert} if ctr_alert else {}),
                },
            ],
            "experiments": [{"experiment": EXPERIMENT, "metrics": ["clicks", "ctr"], **selection}],
        }
    )


def set_up(store: MetadataStore, catalog_file: CatalogFile | None = None) -> None:
    """The experiment's ramps (control and treatment at 50%) and the catalog."""
    store.import_ramps([RampRow(EXPERIMENT, g, START_MS, 50.0) for g in ("control", "treatment")])
    cat = catalog_file or catalog()
    store.sync_catalog(cat.metrics, cat.segments, cat.experiments)


# -- in other processes (spawned: a fresh interpreter each) ------------------------------------


def evaluate_in_process(
    url: str, settings: AlertSettings, barrier: Any, results: Any, looks: int = 20
) -> None:
    """Evaluate the 20% drop's looks, all processes at each look together; put the changes."""
    from streaming.alerts import evaluate_alerts

    try:
        with MetadataStore(url) as store:
            made = []
            for rows in stream_looks(-0.2)[:looks]:
                barrier.wait(timeout=120)
                made += [c.to_state for c in evaluate_alerts(rows, store, settings).changes]
        results.put(made)
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def die_while_sending(message: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def evaluate_then_die(url: str, settings: AlertSettings, clock: Any, looks: int) -> None:
    """Evaluate the 20% drop's first looks; SIGKILLed when the first message goes out."""
    from streaming.alerts import evaluate_alerts

    with MetadataStore(url, clock=clock) as store:
        for rows in stream_looks(-0.2)[:looks]:
            evaluate_alerts(rows, store, settings, send=die_while_sending, post=die_while_sending)
