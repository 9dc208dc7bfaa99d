"""Users (heavy-tailed activity), event types, the diurnal rate and the spam schedule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from udf.errors import InputError
from udf.workload.params import DAY_MS, WorkloadParams

BASE_EVENT_TYPES = ("impression", "click", "search", "save", "share", "latency")
_SPAM_TYPES = 2  # spammers mostly emit the two most common types


def event_type_names(count: int) -> list[str]:
    """``impression, click, search, save, share, latency``, then ``event_07``, ``event_08``..."""
    names = list(BASE_EVENT_TYPES[:count])
    names += [f"event_{i:02d}" for i in range(len(names) + 1, count + 1)]
    return names


def value_types(names: list[str]) -> np.ndarray:
    """Which event types carry a ``value``: ``latency`` and every ``event_NN`` with ``NN % 5 == 0``."""
    return np.array(
        [n == "latency" or (n.startswith("event_") and int(n[6:]) % 5 == 0) for n in names]
    )


def diurnal_weights(params: WorkloadParams) -> np.ndarray:
    """Relative event rate of each hour: a daily cycle peaking at 20:00 UTC, quieter weekends."""
    hours = np.arange(params.hours)
    hour_of_day = hours % 24
    weekday = ((params.start_ms // DAY_MS + hours // 24) + 3) % 7  # 1970-01-01 was a Thursday
    weights = 1.0 + 0.6 * np.cos(2 * np.pi * (hour_of_day - 20) / 24)
    return weights * np.where(weekday >= 5, 0.85, 1.0)


@dataclass(frozen=True)
class SpamBurst:
    """A spammer's ``count`` unique events inside one clock hour (far over the cap)."""

    hour: int
    user: int
    count: int


class Population:
    """Users with heavy-tailed (log-normal) activity rates, and the event-type mix."""

    def __init__(self, params: WorkloadParams, rng: np.random.Generator):
        self.params = params
        weights = rng.lognormal(mean=0.0, sigma=1.3, size=params.users)
        self.cdf = np.cumsum(weights)
        self.cdf /= self.cdf[-1]
        self.spammers = np.sort(rng.choice(params.users, size=params.spammers, replace=False))
        self.type_names = event_type_names(params.event_types)
        type_w = 1.0 / np.arange(1, params.event_types + 1) ** 0.9
        self.type_cdf = np.cumsum(type_w) / type_w.sum()
        self.has_value = value_types(self.type_names)
        self.spam_bursts = self._spam_schedule(rng)

    def sample_users(self, rng: np.random.Generator, n: int) -> np.ndarray:
        idx = np.searchsorted(self.cdf, rng.random(n), side="right")
        return np.minimum(idx, self.params.users - 1).astype(np.int64)

    def sample_types(self, rng: np.random.Generator, n: int) -> np.ndarray:
        idx = np.searchsorted(self.type_cdf, rng.random(n), side="right")
        return np.minimum(idx, self.params.event_types - 1).astype(np.int16)

    def spam_types(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, min(_SPAM_TYPES, self.params.event_types), n).astype(np.int16)

    def values(self, rng: np.random.Generator, types: np.ndarray) -> np.ndarray:
        """A positive, non-integral value rounded to 3 decimals (latency in ms), NaN if none."""
        out = np.full(len(types), np.nan)
        has = self.has_value[types]
        n = int(has.sum())
        if n:
            is_latency = np.array(self.type_names, dtype=object)[types[has]] == "latency"
            raw = np.where(
                is_latency, rng.lognormal(np.log(180.0), 0.5, n), rng.lognormal(1.0, 1.0, n)
            )
            v = np.maximum(np.round(raw, 3), 0.001)
            out[has] = np.where(v == np.floor(v), np.round(v + 0.001, 3), v)
        return out

    def _spam_schedule(self, rng: np.random.Generator) -> list[SpamBurst]:
        """Bursts of 1.5x-5x the cap per spammer-hour, about 5% of the events, >= 1 per spammer."""
        p = self.params
        if p.spammers == 0:
            return []
        mean_burst = 3.25 * p.spam_cap
        per_spammer = int(np.clip(0.05 * p.events / (p.spammers * mean_burst), 1, 6))
        per_spammer = min(per_spammer, p.hours)
        bursts: list[SpamBurst] = []
        for user in self.spammers:
            hours = np.sort(rng.choice(p.hours, size=per_spammer, replace=False))
            counts = rng.integers(int(1.5 * p.spam_cap) + 1, 5 * p.spam_cap + 1, per_spammer)
            bursts += [
                SpamBurst(int(h), int(user), int(c)) for h, c in zip(hours, counts, strict=True)
            ]
        total = sum(b.count for b in bursts)
        if total > p.events // 2:
            raise InputError(
                f"--events {p.events:,} is too small for {p.spammers} spammers over a cap of "
                f"{p.spam_cap:,} ({total:,} spam events); raise --events or lower --spammers "
                "or --spam-cap"
            )
        return bursts
