"""What the real-time pipeline computes: the batch's ``aggregated`` plan, in the stream's terms.

The metadata store's catalog is resolved with :func:`metric_types.plan.resolve`, the very
function ``udf compute`` uses, so both engines compute the same metrics for the same
experiments with the same segments and analysis settings. From it the stream derives what
its SQL needs (which segment fields to keep, which ratio pairs need a cross-product sum, for
which experiments) and what its sink needs (the metrics per experiment, the control groups).

Default metrics (one per event type) follow the batch rule: an event type seen in the data
is a metric of its own name for every experiment unless a configured metric has that name.
Types the catalog does not know yet are added as the stream sees them
(:meth:`StreamPlan.metrics_of`), and registered in the store like batch does.

Some metrics are batch-only, and the stream writes no rows for them rather than rows that
would mean something else under the same name: custom SQL metrics (their SQL runs over whole
slices, not over a stream), and metrics with a conversion window, winsorization or a quantile
(the stream's SQL counts every event of a period and compares means).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from metadata.periods import DAY_MS
from metric_types.plan import MetricPlan, Value, cuped_windows, excluding, resolve

METRIC_TYPE = "aggregated"


@dataclass(frozen=True)
class SegmentSpec:
    """A segment the SQL breaks groups down by: its field and the experiments that use it."""

    name: str
    field: str
    column: str  # the event column holding the field's text (seg_0, seg_1, ...)
    experiments: tuple[str, ...]


@dataclass(frozen=True)
class PairSpec:
    """A ratio's per-user cross product ``x * y``, summed per group (``sum_xy``)."""

    id: str
    numerator: Value
    denominator: Value
    experiments: tuple[str, ...]


@dataclass(frozen=True)
class StreamPlan:
    metrics: tuple[MetricPlan, ...]
    controls: frozenset[tuple[str, str]]
    analysis: dict[str, dict[str, Any]]
    experiment_segments: dict[str, tuple[str, ...]]  # every experiment: its own segments
    taken_names: frozenset[str]  # every metric name in the catalog (defaults never shadow one)
    segments: tuple[SegmentSpec, ...] = ()
    pairs: tuple[PairSpec, ...] = ()
    window_ms: int = 0
    spam_cap: int = 0
    defaults: dict[str, MetricPlan] = field(default_factory=dict, compare=False)

    @property
    def segment_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.field for s in self.segments))

    @cached_property
    def specs(self) -> dict[str, Any]:
        """Each experiment's analysis settings as the catalog model (``AnalysisSpec``)."""
        from results.comparisons import analysis_specs

        return analysis_specs(self.analysis.keys(), self.analysis)

    @cached_property
    def excluding(self) -> tuple[str, ...]:
        """The experiments that leave out users exposed to two of their groups
        (``analysis.multiple_groups: exclude``)."""
        return excluding(self.specs)

    @cached_property
    def pre_windows(self) -> dict[str, int]:
        """The CUPED covariate's window (ms) of each experiment that asks for CUPED."""
        return cuped_windows(self.specs)

    def state_ttl_ms(self, days: float | None = None) -> int:
        """A run's state time to live: ``days`` when set (``stream.state_ttl_days``), else
        the longer of a period and the longest CUPED window, plus two days for records that
        arrive late. An activation reads its user's events of the CUPED window before it, so
        a shorter default would drop them before it arrives."""
        if days:
            return round(days * DAY_MS)
        return max([self.window_ms, *self.pre_windows.values()]) + 2 * DAY_MS

    def pair_of(self, metric: MetricPlan) -> PairSpec | None:
        for pair in self.pairs:
            if (pair.numerator, pair.denominator) == (metric.numerator, metric.denominator):
                return pair
        return None

    def default_metric(self, event_type: str) -> MetricPlan | None:
        """The default metric of an event type the catalog did not know when the plan was made."""
        if event_type in self.taken_names:
            return None
        if event_type not in self.defaults:
            experiments = tuple(sorted(self.experiment_segments))
            self.defaults[event_type] = MetricPlan(
                name=event_type, metric_type=METRIC_TYPE, numerator=Value(event_type),
                experiments=experiments,
                segments=tuple((e, s) for e in experiments if (s := self.experiment_segments[e])),
            )  # fmt: skip
        return self.defaults[event_type]

    def metrics_of(self, experiment: str, event_types: Iterable[str]) -> list[MetricPlan]:
        """The metrics computed for ``experiment``: the catalog's plus new default ones."""
        out = [m for m in self.metrics if experiment in m.experiments]
        for event_type in sorted(set(event_types)):
            metric = self.default_metric(event_type)
            if metric is not None and experiment in metric.experiments:
                out.append(metric)
        return out


def streams(metric: MetricPlan) -> bool:
    """Whether the stream computes ``metric`` (see the module docstring for what it does not)."""
    plain = not metric.window_ms and metric.winsorize is None and metric.quantile is None
    return plain and not metric.is_custom


def load_plan(home: Any, settings: Any) -> StreamPlan:
    """Resolve the catalog of ``home``'s metadata store into a :class:`StreamPlan`."""
    from metadata.repository import MetadataStore

    with MetadataStore.for_home(home) as store:
        catalog = store.metrics()
        taken = frozenset(m.name for m in store.metrics(include_disabled=True))
        experiments = store.experiments()
        segments = store.segments()
    plan = resolve(METRIC_TYPE, catalog, experiments, segments, settings.window_ms)
    metrics = tuple(m for m in plan.metrics if streams(m))
    controls = {
        (e.name, g.name) for e in experiments for g in e.groups if g.is_control
    }  # fmt: skip
    defined = {s.name: s.field for s in segments}
    own = {e.name: tuple(s for s in e.segments if s in defined) for e in experiments}
    users: dict[str, set[str]] = {}
    for m in metrics:
        for experiment, names in m.segments:
            for name in names:
                if name in defined:
                    users.setdefault(name, set()).add(experiment)
    for experiment, names in own.items():
        for name in names:
            users.setdefault(name, set()).add(experiment)
    fields = list(dict.fromkeys(defined[n] for n in sorted(users)))
    segment_specs = tuple(
        SegmentSpec(n, defined[n], f"seg_{fields.index(defined[n])}", tuple(sorted(users[n])))
        for n in sorted(users)
    )
    pairs: dict[tuple[Value, Value], set[str]] = {}
    for m in metrics:
        if m.numerator is not None and m.denominator is not None:
            pairs.setdefault((m.numerator, m.denominator), set()).update(m.experiments)
    pair_specs = tuple(
        PairSpec(f"p{i}", num, den, tuple(sorted(exps)))
        for i, ((num, den), exps) in enumerate(sorted(pairs.items(), key=lambda kv: repr(kv[0])))
    )
    return StreamPlan(
        metrics=metrics,
        controls=frozenset(controls),
        analysis={e.name: dict(e.analysis or {}) for e in experiments},
        experiment_segments=own,
        taken_names=taken,
        segments=segment_specs,
        pairs=pair_specs,
        window_ms=settings.window_ms,
        spam_cap=settings.spam_cap,
    )
