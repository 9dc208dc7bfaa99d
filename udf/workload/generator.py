"""Streaming, hour-by-hour generation in bounded memory.

Event time is cut into slices (an hour, or an equal part of it when an hour holds more than
``chunk_records`` events). For each slice, in order, the generator draws that slice's unique
events, their duplicate copies and the activations they trigger, gives every record an
arrival time (event time plus out-of-order jitter, or 1..``max_late_hours`` h for late ones),
adds them to a pending buffer, and then writes every pending record that arrives before the
slice's end: nothing generated later can arrive earlier, because arrival >= event time.
The buffer therefore only holds records still "in flight" (late ones for up to 48 h), never
the whole data set, and every file is written once, in arrival order.

Randomness comes from ``numpy.random.default_rng([seed, stream, index])``, one stream per
purpose and slice, so output depends only on the parameters.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from udf.errors import InputError
from udf.logging import get_logger
from udf.workload import formatting
from udf.workload.hashing import countries, platforms, user_ids
from udf.workload.manifest import MANIFEST_VERSION, write_manifest
from udf.workload.params import DAY_MS, HOUR_MS, WorkloadParams
from udf.workload.population import Population, diurnal_weights
from udf.workload.scenario import SCENARIOS, Assigner, Experiment, build_experiments, ramps_csv
from udf.workload.writer import TopicWriter

log = get_logger(__name__)

Columns = dict[str, np.ndarray]
Progress = Callable[[int, int], None]

# Streams of randomness (the second element of every seed sequence; 5 is the writers').
_EXPERIMENTS, _USERS, _BUDGET, _SLICE = 1, 2, 3, 4

_JITTER_MEAN_MS = 1_500.0
_JITTER_TAIL_SHARE = 0.05
_JITTER_TAIL_MS = 10 * 60_000
_COPY_LATER_SHARE = 0.3
_COPY_LATER_MAX_MS = 6 * HOUR_MS
_TRIGGER_LEAD_MS = 3_000


def _take(cols: Columns, idx: np.ndarray) -> Columns:
    return {k: v[idx] for k, v in cols.items()}


def _concat(a: Columns, b: Columns) -> Columns:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _slices_per_hour(max_hour_records: int, chunk: int) -> int:
    """The smallest divisor ``k`` of an hour in ms with ``max_hour_records / k <= chunk``."""
    need = max(1, -(-max_hour_records // chunk))
    k = need
    while HOUR_MS % k:
        k += 1
    return k


class _Generator:
    def __init__(self, params: WorkloadParams, root: Path):
        self.p = params
        self.root = root
        self.experiments: list[Experiment] = build_experiments(
            params, np.random.default_rng([params.seed, _EXPERIMENTS])
        )
        self.assigner = Assigner(self.experiments, params.skew)
        self.pop = Population(params, np.random.default_rng([params.seed, _USERS]))
        self.pieces = formatting.activation_pieces(
            [e.name for e in self.experiments], [e.groups for e in self.experiments]
        )
        self._plan_slices()
        self.events = TopicWriter("events", 0, root, params)
        self.activations = TopicWriter("activations", 1, root, params)
        self.activations.stats.by_group = {
            e.name: dict.fromkeys(e.groups, 0) for e in self.experiments
        }
        self.pending_ev: Columns = self._empty_events()
        self.pending_act: Columns = self._empty_activations()
        self.spam_events = 0
        self.events_over_cap = 0
        self.users_over_cap: set[int] = set()
        self.max_slice_records = 0
        self.max_buffered_records = 0

    # -- planning -------------------------------------------------------------------------
    def _plan_slices(self) -> None:
        p = self.p
        rng = np.random.default_rng([p.seed, _BUDGET])
        spam_hour = np.zeros(p.hours, dtype=np.int64)
        for burst in self.pop.spam_bursts:
            spam_hour[burst.hour] += burst.count
        self.spam_total = int(spam_hour.sum())
        weights = diurnal_weights(p)
        hour_counts = rng.multinomial(p.events - self.spam_total, weights / weights.sum())
        k = _slices_per_hour(int((hour_counts + spam_hour).max()), p.chunk_records)
        self.k = k
        self.slice_ms = HOUR_MS // k
        self.slice_counts = rng.multinomial(hour_counts, [1.0 / k] * k).reshape(-1)
        self.slice_spam: dict[int, list[tuple[int, int]]] = {}
        for burst in self.pop.spam_bursts:
            parts = rng.multinomial(burst.count, [1.0 / k] * k)
            for j, c in enumerate(parts.tolist()):
                if c:
                    self.slice_spam.setdefault(burst.hour * k + j, []).append((burst.user, c))

    @staticmethod
    def _empty_events() -> Columns:
        return {
            "user": np.empty(0, np.int64),
            "typ": np.empty(0, np.int16),
            "ts": np.empty(0, np.int64),
            "arr": np.empty(0, np.int64),
            "val": np.empty(0, np.float64),
            "seg": np.empty(0, bool),
            "dup": np.empty(0, bool),
        }

    @staticmethod
    def _empty_activations() -> Columns:
        return {
            "user": np.empty(0, np.int64),
            "exp": np.empty(0, np.int16),
            "grp": np.empty(0, np.int8),
            "ts": np.empty(0, np.int64),
            "arr": np.empty(0, np.int64),
            "dup": np.empty(0, bool),
        }

    # -- drawing one slice ------------------------------------------------------------------
    def _delays(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Arrival minus event time: small out-of-order jitter, or 1..max_late_hours h if late."""
        jitter = rng.exponential(_JITTER_MEAN_MS, n).astype(np.int64)
        tail = rng.random(n) < _JITTER_TAIL_SHARE
        jitter = np.where(tail, jitter + rng.integers(0, _JITTER_TAIL_MS, n), jitter)
        jitter = np.minimum(jitter, HOUR_MS - 1)
        late = rng.random(n) < self.p.late_share
        late_delay = rng.integers(HOUR_MS, self.p.max_late_hours * HOUR_MS + 1, n)
        return np.where(late, late_delay, jitter)

    def _copies(self, rng: np.random.Generator, arr: np.ndarray, d: int) -> tuple[np.ndarray, ...]:
        """``d`` duplicate copies: source rows and arrivals (soon after, or up to 6 h later)."""
        src = rng.integers(0, len(arr), d)
        later = rng.random(d) < _COPY_LATER_SHARE
        gap = np.where(
            later,
            rng.integers(60_000, _COPY_LATER_MAX_MS, d),
            rng.exponential(2_000.0, d).astype(np.int64),
        )
        return src, arr[src] + gap

    def _unique_offsets(
        self, rng: np.random.Generator, user: np.ndarray, typ: np.ndarray, off: np.ndarray
    ) -> None:
        """Redraw offsets until (user, event_type, ts) is unique, so duplicates are only copies."""
        key = (user << 32) | (typ.astype(np.int64) << 22) | off
        while True:
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
            clash = order[np.flatnonzero(sorted_key[1:] == sorted_key[:-1]) + 1]
            if clash.size == 0:
                return
            off[clash] = rng.integers(0, self.slice_ms, clash.size)
            key[clash] = (user[clash] << 32) | (typ[clash].astype(np.int64) << 22) | off[clash]

    def _slice(self, i: int) -> tuple[Columns, Columns, np.ndarray]:
        p, pop = self.p, self.pop
        rng = np.random.default_rng([p.seed, _SLICE, i])
        s0 = p.start_ms + i * self.slice_ms
        n = int(self.slice_counts[i])
        spam = self.slice_spam.get(i, [])
        spam_users = np.repeat(
            np.array([u for u, _ in spam], np.int64), np.array([c for _, c in spam], np.int64)
        )
        self.spam_events += len(spam_users)
        d = int(rng.binomial(n, p.duplicate_share / (1 + p.duplicate_share))) if n else 0
        if n - d + len(spam_users) == 0:
            d = 0
        n_normal = n - d
        user = np.concatenate([pop.sample_users(rng, n_normal), spam_users])
        typ = np.concatenate(
            [pop.sample_types(rng, n_normal), pop.spam_types(rng, len(spam_users))]
        )
        off = rng.integers(0, self.slice_ms, len(user))
        self._unique_offsets(rng, user, typ, off)
        ts = s0 + off
        val = pop.values(rng, typ)
        seg = rng.random(len(user)) < p.segment_share
        arr = ts + self._delays(rng, len(user))
        src, copy_arr = self._copies(rng, arr, d)
        events = {
            "user": np.concatenate([user, user[src]]),
            "typ": np.concatenate([typ, typ[src]]),
            "ts": np.concatenate([ts, ts[src]]),
            "arr": np.concatenate([arr, copy_arr]),
            "val": np.concatenate([val, val[src]]),
            "seg": np.concatenate([seg, seg[src]]),
            "dup": np.concatenate([np.zeros(len(user), bool), np.ones(d, bool)]),
        }
        return events, self._activations(rng, s0, user[:n_normal], ts[:n_normal]), user

    def _activations(
        self, rng: np.random.Generator, s0: int, user: np.ndarray, ts: np.ndarray
    ) -> Columns:
        """Triggers on a share of normal activity, into one experiment the user is eligible for."""
        trig = np.flatnonzero(rng.random(len(user)) < self.p.trigger_share)
        a_user = user[trig]
        a_ts = np.maximum(s0, ts[trig] - rng.integers(0, _TRIGGER_LEAD_MS, len(trig)))
        groups = self.assigner.groups(user_ids(a_user), a_ts)
        pick = rng.random(groups.shape)
        pick[groups < 0] = -1.0
        exp = pick.argmax(axis=1) if len(trig) else np.empty(0, np.int64)
        rows = np.arange(len(trig))
        ok = pick[rows, exp] >= 0 if len(trig) else np.empty(0, bool)
        a_user, a_ts, exp = a_user[ok], a_ts[ok], exp[ok]
        grp = groups[rows[ok], exp]
        if self.p.cross_group_share > 0 and len(grp):  # each scenario's first: two groups
            flip = (exp < len(SCENARIOS)) & (rng.random(len(grp)) < self.p.cross_group_share)
            sizes = np.array([len(e.groups) for e in self.experiments])
            grp = np.where(flip, (grp + 1) % sizes[exp], grp).astype(grp.dtype)
        # Two triggers of one user may land on the same ms: keep one, so copies are exact.
        key = (a_user << 32) | (exp.astype(np.int64) << 22) | (a_ts - s0)
        first = np.sort(np.unique(key, return_index=True)[1])
        a_user, a_ts, exp, grp = a_user[first], a_ts[first], exp[first], grp[first]
        arr = a_ts + self._delays(rng, len(a_user))
        d = int(rng.binomial(len(a_user), self.p.duplicate_share)) if len(a_user) else 0
        src, copy_arr = self._copies(rng, arr, d)
        return {
            "user": np.concatenate([a_user, a_user[src]]),
            "exp": np.concatenate([exp, exp[src]]).astype(np.int16),
            "grp": np.concatenate([grp, grp[src]]).astype(np.int8),
            "ts": np.concatenate([a_ts, a_ts[src]]),
            "arr": np.concatenate([arr, copy_arr]),
            "dup": np.concatenate([np.zeros(len(a_user), bool), np.ones(d, bool)]),
        }

    # -- writing ---------------------------------------------------------------------------
    def _flush(self, topic: TopicWriter, pending: Columns, frontier: int | None) -> Columns:
        """Write pending records arriving before ``frontier`` (all if None); return the rest."""
        if frontier is None:
            due, rest = pending, {k: v[:0] for k, v in pending.items()}
        else:
            mask = pending["arr"] < frontier
            if not mask.any():
                return pending
            due, rest = _take(pending, np.flatnonzero(mask)), _take(pending, np.flatnonzero(~mask))
        due = _take(due, np.argsort(due["arr"], kind="stable"))
        days = due["arr"] // DAY_MS
        cuts = np.flatnonzero(np.diff(days)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(days)], strict=True):
            if hi > lo:
                self._write(topic, _take(due, np.arange(lo, hi)), int(days[lo]))
        return rest

    def _write(self, topic: TopicWriter, cols: Columns, day: int) -> None:
        uids = user_ids(cols["user"])
        topic.count(cols, day)
        if topic.name == "events":
            names = self.pop.type_names
            lines = formatting.event_lines(
                uids,
                cols["typ"],
                cols["ts"],
                cols["val"],
                cols["seg"],
                countries(cols["user"]),
                platforms(cols["user"]),
                names,
            )
            has_value = ~np.isnan(cols["val"])
            topic.stats.with_value += int(has_value.sum())
            topic.stats.with_segments += int(cols["seg"].sum())

            def sources(rows: np.ndarray) -> list[dict]:
                out = []
                for r in rows.tolist():
                    rec: dict[str, Any] = {
                        "user_id": int(uids[r]),
                        "event_type": names[int(cols["typ"][r])],
                        "ts": int(cols["ts"][r]),
                    }
                    if has_value[r]:
                        rec["value"] = float(cols["val"][r])
                    out.append(rec)
                return out
        else:
            lines = formatting.activation_lines(
                uids, cols["exp"], cols["grp"], cols["ts"], self.pieces
            )
            code = cols["exp"].astype(np.int64) * 3 + cols["grp"]
            counts = np.bincount(code, minlength=3 * len(self.experiments))
            for c in np.flatnonzero(counts).tolist():
                exp = self.experiments[c // 3]
                topic.stats.by_group[exp.name][exp.groups[c % 3]] += int(counts[c])

            def sources(rows: np.ndarray) -> list[dict]:
                out = []
                for r in rows.tolist():
                    exp = self.experiments[int(cols["exp"][r])]
                    out.append(
                        {
                            "user_id": int(uids[r]),
                            "experiment": exp.name,
                            "group": exp.groups[int(cols["grp"][r])],
                            "ts": int(cols["ts"][r]),
                        }
                    )
                return out

        topic.write(day, lines, sources)

    # -- the run ---------------------------------------------------------------------------
    @staticmethod
    def _hour_counts(acc: tuple[np.ndarray, np.ndarray], users: np.ndarray) -> tuple:
        """Add a slice's unique events to the hour's per-user counts (at most one row per user)."""
        new_users, new_counts = np.unique(users, return_counts=True)
        both_users = np.concatenate([acc[0], new_users])
        merged, inverse = np.unique(both_users, return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([acc[1], new_counts]))
        return merged, counts.astype(np.int64)

    def _cap_stats(self, acc: tuple[np.ndarray, np.ndarray]) -> None:
        """Count unique events beyond the spam cap in one clock hour (per user)."""
        users, counts = acc
        over = counts > self.p.spam_cap
        self.events_over_cap += int((counts[over] - self.p.spam_cap).sum())
        self.users_over_cap.update(user_ids(users[over]).tolist())

    def run(self, progress: Progress | None = None) -> dict[str, Any]:
        p = self.p
        (self.root / "ramps.csv").write_text(ramps_csv(self.experiments), encoding="utf-8")
        empty = (np.empty(0, np.int64), np.empty(0, np.int64))
        hour_counts = empty
        try:
            for i in range(p.hours * self.k):
                events, acts, uniques = self._slice(i)
                hour_counts = self._hour_counts(hour_counts, uniques)
                self.max_slice_records = max(self.max_slice_records, len(events["user"]))
                self.pending_ev = _concat(self.pending_ev, events)
                self.pending_act = _concat(self.pending_act, acts)
                frontier = p.start_ms + (i + 1) * self.slice_ms
                self.pending_ev = self._flush(self.events, self.pending_ev, frontier)
                self.pending_act = self._flush(self.activations, self.pending_act, frontier)
                self.max_buffered_records = max(
                    self.max_buffered_records,
                    len(self.pending_ev["user"]) + len(self.pending_act["user"]),
                )
                if (i + 1) % self.k == 0:
                    self._cap_stats(hour_counts)
                    hour_counts = empty
                    if progress is not None:
                        progress((i + 1) // self.k, p.hours)
            self.pending_ev = self._flush(self.events, self.pending_ev, None)
            self.pending_act = self._flush(self.activations, self.pending_act, None)
        finally:
            self.events.close()
            self.activations.close()
        document = self.manifest()
        write_manifest(self.root / "manifest.json", document)
        return document

    def manifest(self) -> dict[str, Any]:
        p = self.p
        params = p.as_dict()
        params.update(start_ms=p.start_ms, window_ms=p.window_ms)
        return {
            "manifest_version": MANIFEST_VERSION,
            "parameters": params,
            "layout": {
                "ramps": "ramps.csv",
                "events": "events/events-YYYY-MM-DD.jsonl",
                "activations": "activations/activations-YYYY-MM-DD.jsonl",
                "day_is": "arrival day (UTC); lines in arrival order",
            },
            "event_types": [
                {"name": n, "has_value": bool(v)}
                for n, v in zip(self.pop.type_names, self.pop.has_value, strict=True)
            ],
            "topics": {
                "events": self.events.stats.to_dict(),
                "activations": self.activations.stats.to_dict(),
            },
            "spam": {
                "cap": p.spam_cap,
                "spammer_user_ids": user_ids(self.pop.spammers).tolist(),
                "bursts": [
                    {
                        "user_id": int(user_ids(np.array([b.user]))[0]),
                        "hour_start": p.start_ms + b.hour * HOUR_MS,
                        "events": b.count,
                    }
                    for b in self.pop.spam_bursts
                ],
                "spam_events": self.spam_events,
                "users_over_cap": sorted(self.users_over_cap),
                "events_over_cap": self.events_over_cap,
            },
            "experiments": [e.to_manifest(p.window_ms) for e in self.experiments],
            "slicing": {
                "slices_per_hour": self.k,
                "slice_ms": self.slice_ms,
                "max_slice_records": self.max_slice_records,
                "max_buffered_records": self.max_buffered_records,
            },
        }


def check_output(out: Path, force: bool) -> None:
    """Raise :class:`InputError` unless ``out`` is absent, empty, or ``force`` is given."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"--out {out} is not empty (use --force to replace its content)")


def generate(
    params: WorkloadParams,
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate the workload into ``out`` and return its manifest.

    Refuses a non-empty ``out`` unless ``force``. Files are written into a hidden sibling
    directory and moved into place only when complete, so a failed run leaves nothing behind
    (and ``force`` replaces the old content only on success).
    """
    params.validate()
    out = Path(out).resolve()  # `.` has no name to put a staging sibling beside
    check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(out)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    alive = os.open(staging, os.O_RDONLY)
    fcntl.flock(alive, fcntl.LOCK_EX)  # says "a live run writes here" until this run ends
    try:
        document = _Generator(params, staging).run(progress)
        if out.is_dir():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(alive)
    return document


def _remove_abandoned_staging(out: Path) -> None:
    """Remove the staging folders of killed runs into ``out`` (no live run holds their lock)."""
    for staging in out.parent.glob(f".{glob.escape(out.name)}.partial-*"):
        try:
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a run writing into the same --out right now
        else:
            log.info("generate.removed_abandoned", path=str(staging))
            shutil.rmtree(staging, ignore_errors=True)
        finally:
            os.close(fd)
