"""Group totals → result rows: what each metric picks, worked out by hand."""

from __future__ import annotations

from metric_types.plan import MetricPlan, Value
from streaming.plan import PairSpec, StreamPlan
from streaming.rows import day_of, result_rows

PS, PE = 1_767_225_600_000, 1_767_484_800_000
D = PS // 86_400_000 + 1  # 2026-01-02
CLICK = Value("click")
IMPRESSION = Value("impression")
LATENCY = Value("latency", "sum")


def _plan() -> StreamPlan:
    metrics = (
        MetricPlan("clicks", "aggregated", CLICK, experiments=("exp",),
                   segments=(("exp", ("country",)),)),
        MetricPlan("ctr", "aggregated", CLICK, IMPRESSION, experiments=("exp",)),
        MetricPlan("latency", "aggregated", LATENCY, experiments=("exp",)),
        MetricPlan("other", "aggregated", CLICK, experiments=("other_exp",)),
    )  # fmt: skip
    return StreamPlan(
        metrics=metrics, controls=frozenset({("exp", "control")}), analysis={},
        experiment_segments={"exp": (), "other_exp": ()},
        taken_names=frozenset({"clicks", "ctr", "latency", "other", "click"}),
        pairs=(PairSpec("p0", CLICK, IMPRESSION, ("exp",)),),
    )  # fmt: skip


# control: users a (3 clicks, 3 impressions, country us), b (1 click, 2 impressions, us),
# c (1 impression, no country); treatment: two exposed users without events
TOTALS = {
    ("control", PS, PE, "", "", "exposed", ""): (3, 0, 0, 0.0, 0.0, 0),
    ("control", PS, PE, "", "", "type", "click"): (4, 2, 10, 4.0, 10.0, 2),
    ("control", PS, PE, "", "", "type", "impression"): (6, 3, 14, 6.0, 14.0, 3),
    ("control", PS, PE, "", "", "pair", "p0"): (0, 0, 0, 11.0, 0.0, 2),
    ("control", PS, PE, "country", "us", "exposed", ""): (2, 0, 0, 0.0, 0.0, 0),
    ("control", PS, PE, "country", "us", "type", "click"): (4, 2, 10, 4.0, 10.0, 2),
    ("control", PS, PE, "country", "", "exposed", ""): (1, 0, 0, 0.0, 0.0, 0),
    ("treatment", PS, PE, "", "", "exposed", ""): (2, 0, 0, 0.0, 0.0, 0),
    ("treatment", PS, PE, "country", "", "exposed", ""): (2, 0, 0, 0.0, 0.0, 0),
}


def _rows() -> dict[tuple, object]:
    plan = _plan()
    rows = result_rows("exp", D, TOTALS, plan, plan.metrics_of("exp", []), computed_at=5)
    return {(r.metric, r.group, r.segment, r.segment_value): r for r in rows}


def test_count_ratio_and_sum_metrics_pick_their_totals() -> None:
    rows = _rows()
    click = rows[("clicks", "control", "", "")]
    assert (click.exposed, click.n, click.volume, click.propensity) == (3, 3, 4, 2)
    assert (click.sum, click.sum_sq, click.den_sum) == (4.0, 10.0, None)
    ctr = rows[("ctr", "control", "", "")]
    assert (ctr.sum, ctr.sum_sq, ctr.den_sum, ctr.den_sum_sq, ctr.sum_xy) == (
        4.0,
        10.0,
        6.0,
        14.0,
        11.0,
    )
    latency = rows[("latency", "control", "", "")]  # no latency events: zeros, n = exposed
    assert (latency.n, latency.volume, latency.propensity, latency.sum, latency.sum_sq) == (
        3,
        0,
        0,
        0.0,
        0.0,
    )
    treated = rows[("ctr", "treatment", "", "")]
    assert (treated.n, treated.sum, treated.den_sum, treated.sum_xy) == (2, 0.0, 0.0, 0.0)
    assert {r.source for r in rows.values()} == {"stream"}
    assert {r.date for r in rows.values()} == {day_of(D).isoformat()} == {"2026-01-02"}


def test_only_metrics_with_a_segment_get_its_rows() -> None:
    rows = _rows()
    segmented = {k for k in rows if k[2]}
    assert segmented == {("clicks", "control", "country", "us"), ("clicks", "control", "country", ""),
                         ("clicks", "treatment", "country", "")}  # fmt: skip
    us = rows[("clicks", "control", "country", "us")]
    assert (us.n, us.volume, us.propensity, us.sum) == (2, 4, 2, 4.0)
    none = rows[("clicks", "control", "country", "")]
    assert (none.n, none.volume, none.sum) == (1, 0, 0.0)


def test_sums_without_a_nonzero_term_are_exactly_zero() -> None:
    """Sums whose users all have a zero term are 0, not the round-off of values added to the
    slot and taken back (a user's value moving to another segment value)."""
    plan = _plan()
    totals = {
        **TOTALS,
        ("control", PS, PE, "", "", "type", "click"): (4, 2, 10, 2.8e-14, 1.1e-13, 0),
        ("control", PS, PE, "", "", "pair", "p0"): (0, 0, 0, 1.1e-13, 0.0, 0),
        ("control", PS, PE, "", "", "type", "impression"): (6, 3, 14, 6.0, 14.0, 3),
    }
    metrics = [MetricPlan("click_value", "aggregated", Value("click", "sum"), experiments=("exp",)),
               MetricPlan("ctr", "aggregated", CLICK, IMPRESSION, experiments=("exp",))]  # fmt: skip
    rows = {r.metric: r for r in result_rows("exp", D, totals, plan, metrics, computed_at=5)
            if r.group == "control" and r.segment == ""}  # fmt: skip
    assert (rows["click_value"].sum, rows["click_value"].sum_sq) == (0.0, 0.0)
    assert rows["ctr"].sum_xy == 0.0
    assert (rows["ctr"].sum, rows["ctr"].den_sum) == (4.0, 6.0)  # counts are exact anyway


def test_new_event_types_become_default_metrics_unless_the_name_is_taken() -> None:
    plan = _plan()
    names = {m.name for m in plan.metrics_of("exp", ["click", "search"])}
    assert names == {"clicks", "ctr", "latency", "search"}  # "click" is a taken name
    assert {m.name for m in plan.metrics_of("other_exp", ["search"])} == {"other", "search"}
