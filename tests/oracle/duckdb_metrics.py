"""An independent oracle for docs/metrics.md: every metric row computed in DuckDB SQL.

It reads the RAW archive JSONL files (``<archive>/events/dt=*/hour=*/part-*.jsonl`` and the
activations beside them) line by line, with the file name and the line number (arrival
order), and applies each rule of docs/metrics.md as plainly as SQL allows. It shares no code
with the platform's engines: the periods are derived here from the ramps, the statistics
are written out with scipy / numpy / statsmodels. Only the result *shape* (the column names
of ``results.schema``) and the catalog's parsed models are borrowed.

Readings of points docs/metrics.md leaves open are listed in :data:`READINGS`; the few that
could plausibly go either way are switches on :class:`Oracle` so a mismatch can be traced.

Usage::

    oracle = Oracle(home.archive, ramps, catalog, window_ms=3 * DAY_MS, spam_cap=20)
    rows = oracle.rows("aggregated", date(2026, 1, 5))      # list[dict], ResultRow columns
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
CONTROL = "control"
EPS = 2.220446049250313e-16

COMPARISON_FIELDS = (
    "lift_abs", "lift_rel", "ci_low", "ci_high", "rel_ci_low", "rel_ci_high", "p_value",
    "p_value_adjusted",
)  # fmt: skip
CUPED_FIELDS = (
    "cuped_lift_abs", "cuped_lift_rel", "cuped_ci_low", "cuped_ci_high", "cuped_rel_ci_low",
    "cuped_rel_ci_high", "cuped_p_value", "variance_reduction",
)  # fmt: skip
ROW_FIELDS = (
    "source", "metric_type", "date", "experiment", "group", "metric", "period_start",
    "period_end", "day_in", "look", "segment", "segment_value", "exposed", "volume",
    "propensity", "n", "sum", "sum_sq", "den_sum", "den_sum_sq", "sum_xy", "pre_sum",
    "pre_sum_sq", "pre_sum_xy", *COMPARISON_FIELDS, *CUPED_FIELDS, "status",
)  # fmt: skip
KEY_FIELDS = (
    "source", "metric_type", "date", "experiment", "group", "metric", "period_start",
    "day_in", "segment", "segment_value",
)  # fmt: skip

READINGS = """
- Line order: a file's records are split on '\\n'; line numbers count from 1 (arrival order).
  Copies of one (user_id, event_type, ts) keep the one of the smallest (file name, line).
- The spam cap ranks a user's de-duplicated events per clock hour ts // 3600000 by
  (ts, event_type), keeping ranks 1..X.
- Default metrics: the distinct event types of all valid archived events (whole archive, not
  only the slice), for every experiment with ramps; a configured metric with the same name
  replaces it. A default metric gets a row even when no event of its type is counted.
- Experiment-selected segments break down every metric computed for the experiment,
  default metrics included (switch: default_metrics_use_experiment_segments).
- A user's segment value in a slice comes from the first (ts, event_type) counted event of
  that slice, of ANY event type (docs/metrics.md §7), carrying the field; per day_in for
  days_in, the aggregated slice for custom. It does not depend on which metrics are computed.
- Custom SQL is Spark SQL (the guard's dialect), transpiled to DuckDB with sqlglot and run
  over the views exposures / counted_events built from this oracle's slice tables.
- The segment value is the segment field's text from json_extract_string (a string as is;
  a number as DuckDB re-spells it), JSON null counts as absent.
- days_in: each metric's own max(days) picks its periods; rows per k with >= 1 user.
- custom: volume = propensity = slice users whose returned value is non-zero (NULL = 0).
- Comparisons: same experiment, period_start, metric, day_in, segment, segment_value.
  A treatment row without a control row (its cell has no control user) is a control group
  with n = 0: status "empty_group" (the stats package's labels, docs/statistics.md, are the
  status vocabulary; "no_control" was this oracle's first reading). Status is the most severe of
  empty_group > too_few_units (n < 2) > zero_denominator (ratio) > zero_variance (standard
  error 0) > zero_control_mean. A zero control mean keeps the absolute lift, its interval
  and p-value (docs/metrics.md §8, the stats package's codes), so that p-value counts in the
  correction; the other statuses keep no p-value. Only status-"" rows' statistics and
  zero_control_mean rows' p_value_adjusted are compared field by field.
- Variance: (sum_sq - sum^2/n)/(n-1), exactly 0 when the numerator is within 64 machine
  epsilons of sum_sq (docs/statistics.md "Limits").
- p_value_adjusted: over non-degenerate comparisons of one slice (metric type, date) and
  one family: rows agreeing on experiment, period_start, day_in and every dimension NOT in
  correct_over (segment = segment name and value); correction 'none' gives p_value.
  The family spans the metrics of the metric type computed together (defaults included).
- look: ceil((end of the date - period_start) / 24 h), on every row (docs/metrics.md §8).
- Conversion windows (window_hours): a metric's per-user values (count, sum, ratio's both
  sides, custom SQL's counted_events view) read only the slice's counted events with
  ts < t_u + window_hours * 3600000; the users, their segments and the CUPED covariate
  (pre-exposure, a window of its own) are those of the metric without a window.
- CUPED (experiments whose analysis has cuped: {pre_days: P}; count and sum metrics only,
  default metrics included): a user's covariate is the same per-user value (count of the
  event type, or sum of value) over the user's CLEAN events (after de-duplication and the
  spam cap) with t_u - P days <= ts < t_u, whatever the period, the slice or the metric
  type; 0 without such events. Rows carry pre_sum, pre_sum_sq, pre_sum_xy (sum of x * pre).
  The comparison is computed from the per-user values themselves (numpy, scipy): theta =
  cov(x, pre) / var(pre) over both groups' users together (0 if either variance is 0),
  Welch's test (scipy.stats.ttest_ind) on x - theta * pre, the relative lift over the
  unadjusted control mean with the delta-method variance of the adjusted means,
  variance_reduction = 1 - se(adjusted)^2 / se(unadjusted)^2.
"""


# ---------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Metric:
    name: str
    type: str  # aggregated | calendar_day | days_in | custom
    kind: str  # count | sum | ratio | custom
    event_type: str | None = None
    statistic: str = "count"
    den_event_type: str | None = None
    den_statistic: str = "count"
    days: tuple[int, ...] = ()
    sql: str | None = None
    segments: tuple[str, ...] = ()
    default: bool = False
    window_ms: int = 0  # conversion window: only events with ts < t_u + window_ms (0: none)


@dataclass(frozen=True)
class Selection:
    metrics: frozenset[str]
    segments: tuple[str, ...] = ()
    alpha: float = 0.05
    correction: str = "none"
    correct_over: tuple[str, ...] = ("metric", "group")
    cuped_days: int | None = None  # analysis.cuped.pre_days


@dataclass
class Catalog:
    metrics: dict[str, Metric] = field(default_factory=dict)
    segments: dict[str, str] = field(default_factory=dict)  # segment name -> event field
    selections: dict[str, Selection] = field(default_factory=dict)

    @classmethod
    def from_files(cls, files: Iterable[Any]) -> Catalog:
        """From parsed catalog files (``udf.config.catalog.CatalogFile``, duck-typed)."""
        out = cls()
        for f in files:
            for s in f.segments:
                out.segments[s.name] = s.field
            for m in f.metrics:
                out.metrics[m.name] = _metric_from_spec(m)
            for sel in f.experiments:
                a = sel.analysis
                out.selections[sel.experiment] = Selection(
                    metrics=frozenset(sel.metrics),
                    segments=tuple(sel.segments),
                    alpha=float(a.alpha),
                    correction=a.correction,
                    correct_over=tuple(a.correct_over),
                    cuped_days=None if a.cuped is None else int(a.cuped.pre_days),
                )
        return out


def _metric_from_spec(m: Any) -> Metric:
    window = round(m.window_hours * HOUR_MS) if getattr(m, "window_hours", None) else 0
    common = {"name": m.name, "type": m.type, "segments": tuple(m.segments), "window_ms": window}
    if m.type == "custom":
        if m.sql is None:
            raise NotImplementedError("the oracle evaluates SQL custom metrics only")
        return Metric(kind="custom", sql=m.sql, **common)
    days = tuple(m.days) if m.type == "days_in" else ()
    if m.ratio is not None:
        return Metric(
            kind="ratio", event_type=m.ratio.numerator.event_type,
            statistic=m.ratio.numerator.statistic,
            den_event_type=m.ratio.denominator.event_type,
            den_statistic=m.ratio.denominator.statistic, days=days, **common,
        )  # fmt: skip
    return Metric(
        kind=m.statistic, event_type=m.event_type, statistic=m.statistic, days=days, **common
    )


# ---------------------------------------------------------------------------- periods


def derive_periods(ramp_ts: Iterable[int], window_ms: int) -> list[tuple[int, int]]:
    """the contract §3, written out: ``[(start, end)]`` of one (experiment, group)."""
    periods: list[list[int]] = []
    for r in sorted(ramp_ts):
        if periods and r < periods[-1][1]:
            periods[-1][1] = max(periods[-1][1], r + window_ms)
        else:
            periods.append([r, r + window_ms])
    return [(s, e) for s, e in periods]


def read_ramps_csv(path: Path) -> dict[tuple[str, str], list[int]]:
    import csv

    ramps: dict[tuple[str, str], list[int]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for rec in csv.DictReader(fh):
            ramps[(rec["experiment"], rec["group"])].append(int(rec["ramp_ts"]))
    return dict(ramps)


def day_bounds(day: date) -> tuple[int, int]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000
    return start, start + DAY_MS


# ---------------------------------------------------------------------------- the oracle


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Oracle:
    """Loads the archive once; :meth:`rows` gives the expected rows of one slice."""

    def __init__(
        self,
        archive_dir: Path | str,
        ramps: Mapping[tuple[str, str], Sequence[int]],
        catalog: Catalog | Iterable[Any] | None = None,
        *,
        window_ms: int,
        spam_cap: int,
        default_metrics_use_experiment_segments: bool = True,
        custom_sql_dialect: str = "spark",
        missing_control_status: str = "empty_group",
        segment_event_types: Mapping[str, Collection[str]] | None = None,
        zero_control_mean_keeps_p: bool = True,
    ) -> None:
        """``segment_event_types`` and ``zero_control_mean_keeps_p`` are diagnostics only:
        alternative readings to locate a mismatch (docs/metrics.md: segments come from
        counted events of any type; a degenerate comparison has null comparison columns)."""
        import duckdb

        self.archive = Path(archive_dir)
        self.window_ms = int(window_ms)
        self.spam_cap = int(spam_cap)
        if catalog is None:
            catalog = Catalog()
        elif not isinstance(catalog, Catalog):
            catalog = Catalog.from_files(catalog)
        self.catalog = catalog
        self.default_metrics_use_experiment_segments = default_metrics_use_experiment_segments
        self.custom_sql_dialect = custom_sql_dialect
        self.missing_control_status = missing_control_status
        self.segment_event_types = segment_event_types
        self.zero_control_mean_keeps_p = zero_control_mean_keeps_p
        self.periods = {
            key: derive_periods(ts, self.window_ms) for key, ts in sorted(ramps.items())
        }
        self.experiments = sorted({e for e, _ in self.periods})
        # one column per distinct segment field the catalog uses
        self.fields = sorted(set(catalog.segments.values()))
        self.field_col = {f: f"seg_{i}" for i, f in enumerate(self.fields)}
        self.con = duckdb.connect()
        self.con.execute("SET threads TO 2")
        self._load()
        self._slice: tuple | None = None  # the (metric type, day, days) su/se/ut/useg hold

    # -- loading ------------------------------------------------------------------------

    def _raw(self, topic: str) -> None:
        files = sorted(str(p) for p in (self.archive / topic).glob("dt=*/hour=*/part-*.jsonl"))
        table = f"raw_{topic}"
        if not files:
            self.con.execute(
                f"CREATE TABLE {table} (filename VARCHAR, line_no BIGINT, line VARCHAR)"
            )
            return
        self.con.execute(
            f"""
            CREATE TABLE {table} AS
            SELECT filename, line_no, line FROM (
                SELECT filename,
                       unnest(generate_series(1, len(string_split(content, chr(10))))) AS line_no,
                       unnest(string_split(content, chr(10))) AS line
                FROM read_text(?)
            ) WHERE line <> ''
            """,
            [files],
        )

    def _load(self) -> None:
        c = self.con
        self._raw("events")
        self._raw("activations")
        int_types = "('BIGINT', 'UBIGINT')"
        seg_cols = "".join(
            f", json_extract_string(line, {_lit('$.' + _q(f))}) AS {col}"
            for f, col in self.field_col.items()
        )
        c.execute(
            f"""
            CREATE TABLE parsed_events AS
            SELECT filename, line_no,
                   json_valid(line)
                   AND json_type(line) = 'OBJECT'
                   AND coalesce(json_type(line, '$.user_id') IN {int_types}, false)
                   AND coalesce(json_type(line, '$.ts') IN {int_types}, false)
                   AND coalesce(json_type(line, '$.event_type') = 'VARCHAR', false)
                   AND coalesce(json_type(line, '$.value') IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'NULL'), true)
                   AS ok,
                   line
            FROM raw_events
            """
        )
        c.execute(
            f"""
            CREATE TABLE events AS
            SELECT filename, line_no,
                   CAST(json_extract(line, '$.user_id') AS BIGINT) AS user_id,
                   json_extract_string(line, '$.event_type') AS event_type,
                   CAST(json_extract(line, '$.ts') AS BIGINT) AS ts,
                   coalesce(CAST(json_extract(line, '$.value') AS DOUBLE), 1.0) AS value
                   {seg_cols}
            FROM parsed_events WHERE ok
            """
        )
        c.execute(
            f"""
            CREATE TABLE activations AS
            SELECT CAST(json_extract(line, '$.user_id') AS BIGINT) AS user_id,
                   json_extract_string(line, '$.experiment') AS experiment,
                   json_extract_string(line, '$.group') AS "group",
                   CAST(json_extract(line, '$.ts') AS BIGINT) AS ts
            FROM raw_activations
            WHERE json_valid(line) AND json_type(line) = 'OBJECT'
              AND coalesce(json_type(line, '$.user_id') IN {int_types}, false)
              AND coalesce(json_type(line, '$.ts') IN {int_types}, false)
              AND coalesce(json_type(line, '$.experiment') = 'VARCHAR', false)
              AND coalesce(json_type(line, '$.group') = 'VARCHAR', false)
            """
        )
        self.invalid_lines = {
            "events": c.execute("SELECT count(*) FROM parsed_events WHERE NOT ok").fetchone()[0],
            "activations": c.execute("SELECT count(*) FROM raw_activations").fetchone()[0]
            - c.execute("SELECT count(*) FROM activations").fetchone()[0],
        }
        # 1. duplicates: the earliest line of equal (user_id, event_type, ts) is the event
        c.execute(
            """
            CREATE TABLE deduped AS
            SELECT * FROM events
            QUALIFY row_number() OVER (
                PARTITION BY user_id, event_type, ts ORDER BY filename, line_no) = 1
            """
        )
        # 2. the spam cap: the first X of a user's events in one clock hour by (ts, event_type)
        c.execute(
            f"""
            CREATE TABLE clean AS
            SELECT * FROM deduped
            QUALIFY row_number() OVER (
                PARTITION BY user_id, ts // {HOUR_MS} ORDER BY ts, event_type) <= {self.spam_cap}
            """
        )
        c.execute(
            'CREATE TABLE periods (experiment VARCHAR, "group" VARCHAR, period_start BIGINT, period_end BIGINT)'
        )
        rows = [(e, g, s, t) for (e, g), ps in self.periods.items() for s, t in ps]
        if rows:
            c.executemany("INSERT INTO periods VALUES (?, ?, ?, ?)", rows)
        # exposure: the earliest activation of (experiment, group, user) inside the period
        c.execute(
            """
            CREATE TABLE exposure AS
            SELECT p.experiment, p."group", p.period_start, p.period_end, a.user_id, min(a.ts) AS t_u
            FROM periods p JOIN activations a
              ON a.experiment = p.experiment AND a."group" = p."group"
             AND a.ts >= p.period_start AND a.ts < p.period_end
            GROUP BY ALL
            """
        )
        seg_sel = "".join(f", c.{col}" for col in self.field_col.values())
        # counted events: t_u <= ts < period end
        c.execute(
            f"""
            CREATE TABLE counted AS
            SELECT x.experiment, x."group", x.period_start, x.period_end, x.user_id, x.t_u,
                   c.event_type, c.ts, c.value {seg_sel}
            FROM exposure x JOIN clean c
              ON c.user_id = x.user_id AND c.ts >= x.t_u AND c.ts < x.period_end
            """
        )
        self.event_types = [
            r[0] for r in c.execute("SELECT DISTINCT event_type FROM events ORDER BY 1").fetchall()
        ]

    # -- small facts the tests assert on --------------------------------------------------

    def counts(self) -> dict[str, int]:
        one = lambda sql: self.con.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "events": one("SELECT count(*) FROM events"),
            "deduped": one("SELECT count(*) FROM deduped"),
            "clean": one("SELECT count(*) FROM clean"),
            "activations": one("SELECT count(*) FROM activations"),
            "exposures": one("SELECT count(*) FROM exposure"),
            "counted": one("SELECT count(*) FROM counted"),
        }

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(query, list(params)).fetchall()

    # -- metrics --------------------------------------------------------------------------

    def metrics_for(self, metric_type: str) -> list[tuple[Metric, list[str]]]:
        """Each metric of the type with the experiments that compute it."""
        out: list[tuple[Metric, list[str]]] = []
        if metric_type == "aggregated":
            for et in self.event_types:
                if et not in self.catalog.metrics:
                    out.append((Metric(name=et, type="aggregated", kind="count", event_type=et,
                                       default=True), list(self.experiments)))  # fmt: skip
        for m in self.catalog.metrics.values():
            if m.type != metric_type:
                continue
            exps = [e for e in self.experiments
                    if e in self.catalog.selections and m.name in self.catalog.selections[e].metrics]  # fmt: skip
            if exps:
                out.append((m, exps))
        return out

    def segments_for(self, metric: Metric, experiment: str) -> list[str]:
        names = list(metric.segments)
        sel = self.catalog.selections.get(experiment)
        if sel is not None and (not metric.default or self.default_metrics_use_experiment_segments):
            names += [s for s in sel.segments if s not in names]
        for s in names:
            if s not in self.catalog.segments:
                raise ValueError(f"segment {s!r} is not defined in the catalog")
        return names

    def selection(self, experiment: str) -> Selection:
        return self.catalog.selections.get(experiment, Selection(metrics=frozenset()))

    # -- slices ---------------------------------------------------------------------------

    def _build_slice(self, metric_type: str, day: date, days: tuple[int, ...]) -> None:
        """Tables ``su`` (slice users) and ``se`` (slice events), each with ``day_in``."""
        if self._slice == (metric_type, day, days):
            return
        self._slice = None
        c = self.con
        ds, de = day_bounds(day)
        seg_sel = "".join(f", {col}" for col in self.field_col.values())
        if metric_type in ("aggregated", "custom", "calendar_day"):
            period_cond = f"period_start < {de} AND period_end > {ds}"
            user_parts = [(0, f"{period_cond} AND t_u < {de}")]
            ev_cond = f"ts < {de}"
            if metric_type == "calendar_day":
                ev_cond = f"ts >= {ds} AND {ev_cond}"
            event_parts = [(0, user_parts[0][1], ev_cond)]
        elif metric_type == "days_in":
            period_cond = f"period_end > {ds - max(days) * DAY_MS} AND period_start < {de}"
            user_parts, event_parts = [], []
            for k in days:
                ucond = f"{period_cond} AND t_u + {k * DAY_MS} <= {de}"
                user_parts.append((k, ucond))
                event_parts.append(
                    (k, ucond, f"ts >= t_u + {(k - 1) * DAY_MS} AND ts < t_u + {k * DAY_MS}")
                )
        else:
            raise ValueError(f"unknown metric type {metric_type!r}")
        c.execute("DROP TABLE IF EXISTS su")
        c.execute("DROP TABLE IF EXISTS se")
        c.execute(
            "CREATE TABLE su AS "
            + " UNION ALL ".join(
                f'SELECT experiment, "group", period_start, period_end, {k} AS day_in, user_id, t_u '
                f"FROM exposure WHERE {cond}"
                for k, cond in user_parts
            )
        )
        c.execute(
            "CREATE TABLE se AS "
            + " UNION ALL ".join(
                f'SELECT experiment, "group", period_start, period_end, {k} AS day_in, user_id, t_u, '
                f"event_type, ts, value {seg_sel} FROM counted WHERE ({ucond}) AND ({econd})"
                for k, ucond, econd in event_parts
            )
        )
        # per user and event type of the slice: count and sum of value
        c.execute("DROP TABLE IF EXISTS ut")
        c.execute(
            """
            CREATE TABLE ut AS
            SELECT experiment, "group", period_start, day_in, user_id, event_type,
                   count(*) AS cnt, sum(value) AS total
            FROM se GROUP BY ALL
            """
        )
        # segments: the field's value on the user's first counted event of the slice having it
        c.execute("DROP TABLE IF EXISTS useg")
        seg_filter = ""
        if self.segment_event_types is not None:  # diagnostic only, see __init__
            types = ", ".join(_lit(t) for t in self.segment_event_types[metric_type])
            seg_filter = f"WHERE event_type IN ({types})"
        firsts = "".join(
            f", coalesce(arg_min({col}, ord) FILTER (WHERE {col} IS NOT NULL), '') AS {col}"
            for col in self.field_col.values()
        )
        c.execute(
            f"""
            CREATE TABLE useg AS
            WITH ranked AS (
                SELECT *, row_number() OVER (
                    PARTITION BY experiment, "group", period_start, day_in, user_id
                    ORDER BY ts, event_type) AS ord
                FROM se {seg_filter}
            ), firsts AS (
                SELECT experiment, "group", period_start, day_in, user_id {firsts}
                FROM ranked GROUP BY ALL
            )
            SELECT su.experiment, su."group", su.period_start, su.day_in, su.user_id
                   {"".join(f", coalesce(f.{col}, '') AS {col}" for col in self.field_col.values())}
            FROM su LEFT JOIN firsts f
              ON f.experiment = su.experiment AND f."group" = su."group"
             AND f.period_start = su.period_start AND f.day_in = su.day_in AND f.user_id = su.user_id
            """
        )
        self._slice = (metric_type, day, days)

    def _user_values(self, metric: Metric, experiments: list[str]) -> None:
        """Table ``uv``: one row per slice user: ``num_events``, ``x``, ``y``."""
        c = self.con
        c.execute("DROP TABLE IF EXISTS uv")
        exp_list = ", ".join(_lit(e) for e in experiments)
        on = ('ON {a}.experiment = su.experiment AND {a}."group" = su."group" '
              "AND {a}.period_start = su.period_start AND {a}.day_in = su.day_in "
              "AND {a}.user_id = su.user_id")  # fmt: skip
        if metric.kind == "custom":
            import sqlglot

            sql = sqlglot.transpile(metric.sql, read=self.custom_sql_dialect, write="duckdb")[0]
            c.execute("DROP VIEW IF EXISTS exposures")
            c.execute("DROP VIEW IF EXISTS counted_events")
            c.execute(
                'CREATE VIEW exposures AS SELECT experiment, "group", period_start, period_end, '
                "user_id, t_u AS exposure_ts FROM su"
            )
            within = f"WHERE ts < t_u + {metric.window_ms}" if metric.window_ms else ""
            c.execute(
                'CREATE VIEW counted_events AS SELECT experiment, "group", period_start, user_id, '
                f"event_type, ts, value FROM se {within}"
            )
            c.execute(
                f"""
                CREATE TABLE uv AS
                SELECT su.experiment, su."group", su.period_start, su.period_end, su.day_in,
                       su.user_id, CAST(coalesce(r.value, 0) AS DOUBLE) AS x,
                       CAST(NULL AS DOUBLE) AS y, CAST(NULL AS DOUBLE) AS pre,
                       CASE WHEN coalesce(r.value, 0) <> 0 THEN 1 ELSE 0 END AS num_events
                FROM su LEFT JOIN ({sql}) r
                  ON r.experiment = su.experiment AND r."group" = su."group"
                 AND r.period_start = su.period_start AND r.user_id = su.user_id
                WHERE su.experiment IN ({exp_list})
                """
            )
            return
        pick = lambda alias, stat: (  # noqa: E731
            f"CAST(coalesce({alias}.cnt, 0) AS DOUBLE)" if stat == "count"
            else f"coalesce({alias}.total, 0.0)"
        )  # fmt: skip
        # A conversion window: per-user counts and sums over the window's events only.
        ut = "ut" if not metric.window_ms else (
            '(SELECT experiment, "group", period_start, day_in, user_id, event_type, '
            "count(*) AS cnt, sum(value) AS total FROM se "
            f"WHERE ts < t_u + {metric.window_ms} GROUP BY ALL)"
        )  # fmt: skip
        den_join, y = "", "CAST(NULL AS DOUBLE)"
        if metric.kind == "ratio":
            den_join = f"LEFT JOIN {ut} d {on.format(a='d')} AND d.event_type = {_lit(metric.den_event_type)}"
            y = pick("d", metric.den_statistic)
        pre_join, pre = "", "CAST(NULL AS DOUBLE)"
        cuped = [e for e in experiments if self.selection(e).cuped_days is not None]
        if metric.kind in ("count", "sum") and cuped:
            self._covariates(metric, cuped)
            pre_join = (
                'LEFT JOIN pv ON pv.experiment = su.experiment AND pv."group" = su."group" '
                "AND pv.period_start = su.period_start AND pv.user_id = su.user_id"
            )
            in_cuped = ", ".join(_lit(e) for e in cuped)
            pre = f"CASE WHEN su.experiment IN ({in_cuped}) THEN coalesce(pv.pre, 0.0) END"
        c.execute(
            f"""
            CREATE TABLE uv AS
            SELECT su.experiment, su."group", su.period_start, su.period_end, su.day_in, su.user_id,
                   {pick("m", metric.statistic)} AS x, {y} AS y, {pre} AS pre,
                   coalesce(m.cnt, 0) AS num_events
            FROM su
            LEFT JOIN {ut} m {on.format(a="m")} AND m.event_type = {_lit(metric.event_type)}
            {den_join}
            {pre_join}
            WHERE su.experiment IN ({exp_list})
            """
        )

    def _covariates(self, metric: Metric, experiments: list[str]) -> None:
        """Table ``pv``: each exposure's covariate, over its clean events of the metric's type
        in ``[t_u - pre_days, t_u)`` (exposures without such events are absent: 0)."""
        c = self.con
        windows = " UNION ALL ".join(
            f"SELECT {_lit(e)} AS experiment, {self.selection(e).cuped_days * DAY_MS} AS w"
            for e in experiments
        )
        value = "count(*)" if metric.kind == "count" else "sum(c.value)"
        c.execute("DROP TABLE IF EXISTS pv")
        c.execute(
            f"""
            CREATE TABLE pv AS
            SELECT x.experiment, x."group", x.period_start, x.user_id,
                   CAST({value} AS DOUBLE) AS pre
            FROM exposure x JOIN ({windows}) win ON win.experiment = x.experiment
            JOIN clean c ON c.user_id = x.user_id AND c.event_type = {_lit(metric.event_type)}
             AND c.ts >= x.t_u - win.w AND c.ts < x.t_u
            GROUP BY ALL
            """
        )

    def _aggregate(self, metric: Metric, segment: str | None, experiments: list[str]) -> list[dict]:
        col = "''" if segment is None else f"g.{self.field_col[self.catalog.segments[segment]]}"
        exp_list = ", ".join(_lit(e) for e in experiments)
        ratio = metric.kind == "ratio"
        res = self.con.execute(
            f"""
            SELECT uv.experiment, uv."group", uv.period_start, uv.period_end, uv.day_in,
                   {col} AS segment_value,
                   count(*) AS n,
                   CAST(sum(num_events) AS BIGINT) AS volume,
                   count(*) FILTER (WHERE num_events > 0) AS propensity,
                   sum(x) AS s, sum(x * x) AS ss,
                   sum(y) AS ds, sum(y * y) AS dss, sum(x * y) AS sxy,
                   sum(pre) AS ps, sum(pre * pre) AS pss, sum(x * pre) AS sxp,
                   list(x ORDER BY uv.user_id) FILTER (WHERE pre IS NOT NULL) AS xs,
                   list(pre ORDER BY uv.user_id) FILTER (WHERE pre IS NOT NULL) AS pres
            FROM uv JOIN useg g
              ON g.experiment = uv.experiment AND g."group" = uv."group"
             AND g.period_start = uv.period_start AND g.day_in = uv.day_in AND g.user_id = uv.user_id
            WHERE uv.experiment IN ({exp_list})
            GROUP BY ALL
            """
        ).fetchall()
        out = []
        for (exp, grp, ps, pe, k, sv, n, vol, prop, s, ss, ds_, dss, sxy, p_s, p_ss, sxp, xs,
             pres) in res:  # fmt: skip
            cuped = p_s is not None
            out.append({
                "experiment": exp, "group": grp, "metric": metric.name,
                "period_start": int(ps), "period_end": int(pe), "day_in": int(k),
                "segment": segment or "", "segment_value": sv,
                "exposed": int(n), "volume": int(vol), "propensity": int(prop), "n": int(n),
                "sum": float(s), "sum_sq": float(ss),
                "den_sum": float(ds_) if ratio else None,
                "den_sum_sq": float(dss) if ratio else None,
                "sum_xy": float(sxy) if ratio else None,
                "pre_sum": float(p_s) if cuped else None,
                "pre_sum_sq": float(p_ss) if cuped else None,
                "pre_sum_xy": float(sxp) if cuped else None,
                "_kind": metric.kind, "_xs": xs, "_pres": pres,
            })  # fmt: skip
        return out

    # -- the public entry -------------------------------------------------------------------

    def rows(
        self, metric_type: str, day: date, experiments: Sequence[str] | None = None
    ) -> list[dict]:
        """The expected result rows of one (metric type, date) slice, statistics included."""
        rows: list[dict] = []
        for metric, exps in self.metrics_for(metric_type):
            if experiments is not None:
                exps = [e for e in exps if e in experiments]
            if not exps:
                continue
            days = metric.days if metric_type == "days_in" else (0,)
            self._build_slice(metric_type, day, days)
            self._user_values(metric, exps)
            rows += self._aggregate(metric, None, exps)
            by_segment: dict[str, list[str]] = defaultdict(list)
            for e in exps:
                for s in self.segments_for(metric, e):
                    by_segment[s].append(e)
            for s, seg_exps in by_segment.items():
                rows += self._aggregate(metric, s, seg_exps)
        day_end = day_bounds(day)[1]
        for r in rows:
            r.update(source="batch", metric_type=metric_type, date=day.isoformat(),
                     look=math.ceil((day_end - r["period_start"]) / DAY_MS))  # fmt: skip
        self._compare(rows)
        for r in rows:
            del r["_kind"], r["_xs"], r["_pres"]
        return sorted(rows, key=row_key)

    def user_values(
        self, metric_type: str, day: date, metric: str, experiment: str
    ) -> list[tuple[str, int, float, float | None]]:
        """``(group, period_start, x, pre)`` of each user of the slice: the metric's value
        and its CUPED covariate (None unless the experiment asks for CUPED)."""
        [(m, _)] = [(m, e) for m, e in self.metrics_for(metric_type) if m.name == metric]
        self._build_slice(metric_type, day, m.days if metric_type == "days_in" else (0,))
        self._user_values(m, [experiment])
        return self.sql(
            'SELECT "group", period_start, x, pre FROM uv WHERE experiment = ? '
            'ORDER BY "group", period_start, user_id',
            [experiment],
        )

    # -- statistics -------------------------------------------------------------------------

    def _compare(self, rows: list[dict]) -> None:
        def cell(r: dict) -> tuple:
            return (r["experiment"], r["period_start"], r["metric"], r["day_in"],
                    r["segment"], r["segment_value"])  # fmt: skip

        controls = {cell(r): r for r in rows if r["group"] == CONTROL}
        for r in rows:
            for f in (*COMPARISON_FIELDS, *CUPED_FIELDS):
                r[f] = None
            r["status"] = ""
            if r["group"] == CONTROL:
                continue
            c = controls.get(cell(r))
            alpha = self.selection(r["experiment"]).alpha
            if c is None:
                r["status"] = self.missing_control_status
            elif r["_kind"] == "ratio":
                r.update(ratio_comparison(c, r, alpha, self.zero_control_mean_keeps_p))
            else:
                r.update(welch_comparison(c, r, alpha, self.zero_control_mean_keeps_p))
            if c is not None and r["pre_sum"] is not None and r["status"] == "":
                r.update(cuped_comparison(c["_xs"], c["_pres"], r["_xs"], r["_pres"], alpha))
        # multiple-testing correction within families
        families: dict[tuple, list[dict]] = defaultdict(list)
        for r in rows:
            if r["p_value"] is None:
                continue
            sel = self.selection(r["experiment"])
            key: list[Any] = [r["experiment"], r["period_start"], r["day_in"]]
            if "segment" not in sel.correct_over:
                key += [r["segment"], r["segment_value"]]
            if "metric" not in sel.correct_over:
                key.append(r["metric"])
            if "group" not in sel.correct_over:
                key.append(r["group"])
            families[tuple(key)].append(r)
        for members in families.values():
            sel = self.selection(members[0]["experiment"])
            adjusted = adjust([m["p_value"] for m in members], sel.correction)
            for m, a in zip(members, adjusted, strict=True):
                m["p_value_adjusted"] = a


# ---------------------------------------------------------------------------- statistics


def variance(n: float, s: float, ss: float) -> float:
    """Sample variance from (n, sum, sum_sq); round-off around 0 is 0 (docs/statistics.md)."""
    raw = ss - s * s / n
    if abs(raw) <= 64 * EPS * abs(ss):
        return 0.0
    return max(raw, 0.0) / (n - 1)


def _status(n_c: int, n_t: int, *, zero_den: bool, se: float, base_c: float) -> str:
    if n_c == 0 or n_t == 0:
        return "empty_group"
    if n_c < 2 or n_t < 2:
        return "too_few_units"
    if zero_den:
        return "zero_denominator"
    if se == 0:
        return "zero_variance"
    if base_c == 0:
        return "zero_control_mean"
    return ""


def _finish(diff: float, base_c: float, base_t: float, uv_c: float, n_c: int, uv_t: float,
            n_t: int, alpha: float, p_value: float | None) -> dict:  # fmt: skip
    """Intervals from unit variances: Welch df, the delta method for the relative lift."""
    from scipy import stats as st

    a, b = uv_c / n_c, uv_t / n_t
    se = math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (n_c - 1) + b**2 / (n_t - 1))
    q = float(st.t.ppf(1 - alpha / 2, df))
    if p_value is None:
        p_value = float(2 * st.t.sf(abs(diff / se), df))
    rel = base_t / base_c - 1
    var_rel = uv_t / (base_c**2 * n_t) + uv_c * base_t**2 / (base_c**4 * n_c)
    se_rel = math.sqrt(var_rel)
    return {
        "lift_abs": diff, "lift_rel": rel,
        "ci_low": diff - q * se, "ci_high": diff + q * se,
        "rel_ci_low": rel - q * se_rel, "rel_ci_high": rel + q * se_rel,
        "p_value": p_value,
    }  # fmt: skip


def _absolute_only(full: dict, status: str) -> dict:
    """Diagnostic: a zero control mean keeping the absolute lift, its interval and p."""
    keep = ("lift_abs", "ci_low", "ci_high", "p_value")
    return {**{f: full[f] for f in keep}, "status": status}


def welch_comparison(c: dict, t: dict, alpha: float, zero_mean_keeps_p: bool = False) -> dict:
    """Count and sum metrics: Welch t-test on (n, sum, sum_sq); p from scipy."""
    from scipy import stats as st

    n_c, n_t = c["n"], t["n"]
    if n_c < 2 or n_t < 2:
        return {"status": _status(n_c, n_t, zero_den=False, se=1.0, base_c=1.0)}
    m_c, m_t = c["sum"] / n_c, t["sum"] / n_t
    v_c, v_t = variance(n_c, c["sum"], c["sum_sq"]), variance(n_t, t["sum"], t["sum_sq"])
    se = math.sqrt(v_c / n_c + v_t / n_t)
    status = _status(n_c, n_t, zero_den=False, se=se, base_c=m_c)
    if status and not (status == "zero_control_mean" and zero_mean_keeps_p):
        return {"status": status}
    p = st.ttest_ind_from_stats(
        m_t, math.sqrt(v_t), n_t, m_c, math.sqrt(v_c), n_c, equal_var=False
    ).pvalue
    if status:
        full = _finish(m_t - m_c, 1.0, 1.0, v_c, n_c, v_t, n_t, alpha, float(p))
        return _absolute_only(full, status)
    return _finish(m_t - m_c, m_c, m_t, v_c, n_c, v_t, n_t, alpha, float(p))


def cuped_comparison(
    x_c: Sequence[float],
    pre_c: Sequence[float],
    x_t: Sequence[float],
    pre_t: Sequence[float],
    alpha: float,
) -> dict:
    """CUPED from the users' own values (docs/statistics.md): theta = cov(x, pre) / var(pre)
    over both groups, Welch's test on x - theta * pre; relative lift over the unadjusted
    control mean; the variance reduction of the lift's estimate."""
    import numpy as np
    from scipy import stats as st

    xc, pc, xt, pt = (np.asarray(v, dtype=float) for v in (x_c, pre_c, x_t, pre_t))
    x, pre = np.concatenate([xc, xt]), np.concatenate([pc, pt])
    var_pre, var_x = pre.var(ddof=1), x.var(ddof=1)
    theta = float(np.cov(x, pre)[0, 1] / var_pre) if var_pre > 0 and var_x > 0 else 0.0
    adj_c, adj_t = xc - theta * pc, xt - theta * pt
    n_c, n_t = len(xc), len(xt)
    a, b = adj_c.var(ddof=1) / n_c, adj_t.var(ddof=1) / n_t
    se = math.sqrt(a + b)
    plain_se = math.sqrt(xc.var(ddof=1) / n_c + xt.var(ddof=1) / n_t)
    df = (a + b) ** 2 / (a**2 / (n_c - 1) + b**2 / (n_t - 1))
    q = float(st.t.ppf(1 - alpha / 2, df))
    diff = float(adj_t.mean() - adj_c.mean())
    p = float(st.ttest_ind(adj_t, adj_c, equal_var=False).pvalue)
    m_c, m_t = float(xc.mean()), float(xt.mean())
    rel = diff / m_c
    se_rel = math.sqrt(b / m_c**2 + a * m_t**2 / m_c**4)
    return {
        "cuped_lift_abs": diff, "cuped_lift_rel": rel,
        "cuped_ci_low": diff - q * se, "cuped_ci_high": diff + q * se,
        "cuped_rel_ci_low": rel - q * se_rel, "cuped_rel_ci_high": rel + q * se_rel,
        "cuped_p_value": p, "variance_reduction": 1 - se**2 / plain_se**2,
    }  # fmt: skip


def _ratio_unit(r: dict) -> tuple[float, float]:
    n = r["n"]
    mu_m, mu_d = r["sum"] / n, r["den_sum"] / n
    var_m = variance(n, r["sum"], r["sum_sq"])
    var_d = variance(n, r["den_sum"], r["den_sum_sq"])
    cov = (r["sum_xy"] - r["sum"] * r["den_sum"] / n) / (n - 1)
    unit = var_m / mu_d**2 - 2 * cov * mu_m / mu_d**3 + mu_m**2 * var_d / mu_d**4
    return r["sum"] / r["den_sum"], max(unit, 0.0)


def ratio_comparison(c: dict, t: dict, alpha: float, zero_mean_keeps_p: bool = False) -> dict:
    """Ratio metrics: the delta method on the ratio of means, then Welch."""
    n_c, n_t = c["n"], t["n"]
    zero_den = c["den_sum"] == 0 or t["den_sum"] == 0
    if n_c < 2 or n_t < 2 or zero_den:
        return {"status": _status(n_c, n_t, zero_den=zero_den, se=1.0, base_c=1.0)}
    r_c, u_c = _ratio_unit(c)
    r_t, u_t = _ratio_unit(t)
    se = math.sqrt(u_c / n_c + u_t / n_t)
    status = _status(n_c, n_t, zero_den=False, se=se, base_c=r_c)
    if status == "zero_control_mean" and zero_mean_keeps_p:
        return _absolute_only(_finish(r_t - r_c, 1.0, 1.0, u_c, n_c, u_t, n_t, alpha, None), status)
    if status:
        return {"status": status}
    return _finish(r_t - r_c, r_c, r_t, u_c, n_c, u_t, n_t, alpha, None)


def adjust(p_values: Sequence[float], correction: str) -> list[float]:
    if correction == "none":
        return [float(p) for p in p_values]
    from statsmodels.stats.multitest import multipletests

    method = {"bonferroni": "bonferroni", "holm": "holm", "bh": "fdr_bh"}[correction]
    return [float(p) for p in multipletests(list(p_values), method=method)[1]]


# ---------------------------------------------------------------------------- helpers


def row_key(row: Mapping[str, Any]) -> tuple:
    """The same tuple as ``ResultRow.key()``."""
    return tuple(row[f] for f in KEY_FIELDS)


def expected_rows(
    archive_dir: Path | str,
    ramps: Mapping[tuple[str, str], Sequence[int]],
    catalog: Catalog | Iterable[Any] | None,
    metric_type: str,
    day: date,
    window_ms: int,
    spam_cap: int,
    *,
    experiments: Sequence[str] | None = None,
    **options: Any,
) -> list[dict]:
    """One-shot form of :class:`Oracle` (loads the archive on every call)."""
    oracle = Oracle(archive_dir, ramps, catalog, window_ms=window_ms, spam_cap=spam_cap, **options)
    try:
        return oracle.rows(metric_type, day, experiments)
    finally:
        oracle.con.close()
