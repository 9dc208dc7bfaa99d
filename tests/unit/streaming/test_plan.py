"""The stream's plan is batch's ``aggregated`` plan, plus what its SQL needs."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from metadata.records import RampRow
from metadata.repository import MetadataStore
from metric_types.plan import Value
from streaming.plan import load_plan
from udf.cli import main
from udf.home import Home
from udf.settings import load_settings

T0 = 1_767_225_600_000


def test_segments_pairs_and_controls_come_from_the_catalog(home: Home, tmp_path: Path) -> None:
    with MetadataStore.for_home(home) as store:
        store.import_ramps([RampRow(e, g, T0, 50.0) for e in ("a", "b") for g in ("control", "t")])
    catalog = {
        "segments": [{"name": "country", "field": "country"}, {"name": "os", "field": "platform"}],
        "metrics": [
            {"name": "clicks", "type": "aggregated", "event_type": "click", "segments": ["country"]},
            {"name": "ctr", "type": "aggregated",
             "ratio": {"numerator": {"event_type": "click"},
                       "denominator": {"event_type": "view", "statistic": "sum"}}},
            {"name": "clicks_30h", "type": "aggregated", "event_type": "click", "window_hours": 30},
            {"name": "views_capped", "type": "aggregated", "event_type": "view",
             "winsorize": {"percentile": 99}},
            {"name": "views_p90", "type": "aggregated", "event_type": "view",
             "quantile": {"level": 0.9}},
            {"name": "kinds", "type": "custom",
             "sql": "SELECT experiment, `group`, period_start, user_id, 1 AS value FROM exposures"},
        ],
        "experiments": [
            {"experiment": "a", "metrics": ["clicks", "ctr", "kinds", "clicks_30h", "views_capped",
                                            "views_p90"], "segments": ["os"],
             "analysis": {"correction": "holm"}},
            {"experiment": "b", "metrics": ["ctr"]},
        ],
    }  # fmt: skip
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "c.yaml").write_text(yaml.safe_dump(catalog))
    result = CliRunner().invoke(
        main, ["--home", str(home.root), "config", "load", str(tmp_path / "catalog")]
    )
    assert result.exit_code == 0, result.output

    plan = load_plan(home, load_settings(home, {}))
    # custom SQL, conversion windows, winsorization and quantiles are batch-only
    assert {m.name for m in plan.metrics} == {"clicks", "ctr"}
    assert {"clicks_30h", "views_capped", "views_p90"} <= plan.taken_names  # no default shadows
    assert {(s.name, s.field, s.experiments) for s in plan.segments} == {
        ("country", "country", ("a",)), ("os", "platform", ("a",)),
    }  # fmt: skip
    assert plan.segment_fields == ("country", "platform")
    (pair,) = plan.pairs
    assert (pair.numerator, pair.denominator) == (Value("click"), Value("view", "sum"))
    assert pair.experiments == ("a", "b")
    assert plan.controls == {("a", "control"), ("b", "control")}
    assert plan.analysis["a"]["correction"] == "holm"
    assert plan.experiment_segments == {"a": ("os",), "b": ()}


def test_a_runs_state_outlives_the_longest_cuped_window() -> None:
    """The default state TTL keeps a user's events until an activation whose CUPED window
    reaches back to them can still arrive (two days late)."""
    from streaming.plan import StreamPlan

    day = 86_400_000

    def plan(analysis: dict[str, dict[str, object]]) -> StreamPlan:
        return StreamPlan(metrics=(), controls=frozenset(), analysis=analysis,
                          experiment_segments={}, taken_names=frozenset(), window_ms=7 * day)  # fmt: skip

    assert plan({"a": {}}).state_ttl_ms() == 9 * day
    assert plan({"a": {"cuped": {"pre_days": 3}}}).state_ttl_ms() == 9 * day
    assert plan({"a": {}, "b": {"cuped": {"pre_days": 14}}}).state_ttl_ms() == 16 * day
    assert plan({"b": {"cuped": {"pre_days": 14}}}).state_ttl_ms(2.5) == 2.5 * day
