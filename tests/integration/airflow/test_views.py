"""The plugin's UI views on a test home: every endpoint behind the login, the numbers shown.

The views are rendered by the plugin's own app (Airflow's login check replaced by a fixed
user where a test is logged in). Expected figures come from the raw per-user data
(numpy, scipy, statsmodels) or straight from the results store, never from the views' code.
"""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from fastapi.testclient import TestClient

from tests.integration.airflow import ui_example
from tests.integration.airflow.ui_example import DAYS, EXPERIMENT, table

pytestmark = pytest.mark.airflow


@pytest.fixture
def example(home):
    return ui_example.build(home)


@pytest.fixture
def client(example):
    from plugins.udf_plugin import airflow_user, create_app

    app = create_app()
    app.dependency_overrides[airflow_user] = lambda: "tester"
    return TestClient(app)


def concrete_paths(app) -> list[tuple[str, str]]:
    """Every route of the app as (method, path), path parameters filled in."""
    from starlette.routing import Mount, Route

    found = []
    for route in app.routes:
        assert isinstance(route, Route) and not isinstance(route, Mount), route
        path = route.path.replace("{name:path}", "uplot/uPlot.iife.min.js")
        path = re.sub(r"\{[^}]+\}", EXPERIMENT, path)
        found += [(method, path) for method in sorted(route.methods or {"GET"})]
    return found


def test_every_endpoint_refuses_an_anonymous_caller(example):
    from plugins.udf_plugin import create_app

    app = create_app()
    paths = concrete_paths(app)
    wanted = {"/status", "/on-demand", "/openapi.json", "/docs", "/ui/tracking",
              "/ui/experiments", f"/ui/experiments/{EXPERIMENT}", "/ui/realtime",
              "/static/uplot/uPlot.iife.min.js"}  # fmt: skip
    assert wanted <= {p for _, p in paths}
    anonymous = TestClient(app)
    for method, path in paths:
        answer = anonymous.request(method, path)
        assert answer.status_code == 401, (method, path, answer.status_code)


def test_the_chart_library_is_served_from_the_package(client):
    script = client.get("/static/uplot/uPlot.iife.min.js")
    assert script.status_code == 200 and "uPlot" in script.text
    assert "MIT License" in client.get("/static/uplot/LICENSE").text
    assert client.get("/static/../views.py").status_code == 404
    page = client.get("/ui/tracking").text
    assert (
        "/static/uplot/uPlot.iife.min.js" in page
        and "http" not in re.findall(r'src="([^"]+)"', page)[0]
    )


def test_tracking_shows_every_metric_day_with_owners_and_delays(client):
    page = client.get("/ui/tracking")
    assert page.status_code == 200
    rows = table(page.text, "runs")[1:]
    seen = {(r["attrs"]["data-metric"], r["attrs"]["data-ds"], r["attrs"]["data-experiment"]):
            r["attrs"]["data-state"] for r in rows}  # fmt: skip
    assert seen == {
        ("clicks", "2026-01-01", ""): "done",
        ("clicks", "2026-01-02", ""): "failed",
        ("searches", "2026-01-02", ""): "waiting_on_source",
        ("clicks", "2026-01-03", EXPERIMENT): "done",
    }
    failed = next(r for r in rows if r["attrs"]["data-state"] == "failed")
    header = table(page.text, "runs")[0]["cells"]
    cell = dict(zip(header, failed["cells"], strict=False))
    assert cell["reason"] == "spark died" and cell["owners"] == "clicks-owner@example.com"
    assert cell["due (UTC)"] == "2026-01-03 06:00"  # the day's end plus its 6-hour SLA
    assert float(cell["late (h)"]) > 0  # long past due: this test runs after 2026-01-03

    only = table(client.get("/ui/tracking", params={"state": "failed"}).text, "runs")[1:]
    assert [r["attrs"]["data-metric"] for r in only] == ["clicks"]
    owner = client.get("/ui/tracking", params={"owner": "search-owner@example.com"}).text
    assert [r["attrs"]["data-metric"] for r in table(owner, "runs")[1:]] == ["searches"]
    scoped = client.get("/ui/tracking", params={"experiment": EXPERIMENT}).text
    assert [r["attrs"]["data-ds"] for r in table(scoped, "runs")[1:]] == ["2026-01-03"]
    assert "Range backfill" in page.text and 'data-dag="udf_range_backfill"' in page.text
    assert 'data-dag="udf_on_demand"' in page.text


def test_experiment_view_shows_the_stores_comparisons(client, home):
    from results.stores import open_store
    from udf.settings import load_settings

    page = client.get(f"/ui/experiments/{EXPERIMENT}")
    assert page.status_code == 200, page.text
    with open_store(home, load_settings(home)) as store:
        stored = {
            (r.source, r.segment, r.segment_value): r
            for r in store.read(experiments=[EXPERIMENT], date_from=DAYS[-1])
            if r.group == "treatment"
        }
    for table_id in ("comparisons", "segments"):
        rows = table(page.text, table_id)
        header, body = rows[0]["cells"], rows[1:]
        assert len(body) == 2  # batch and stream, each at its latest day
        for row in body:
            a = row["attrs"]
            want = stored[(a["data-source"], a["data-segment"], a["data-segment-value"])]
            assert a["data-date"] == DAYS[-1].isoformat()
            values = dict(zip(header, row["values"], strict=True))
            for column, field in (("relative lift", "lift_rel"), ("p-value", "p_value"),
                                  ("corrected p", "p_value_adjusted"),
                                  ("sequential p", "seq_p_value"),
                                  ("chance to beat control", "prob_beat_control"),
                                  ("expected loss", "expected_loss")):  # fmt: skip
                assert float(values[column]) == getattr(want, field), (column, a)
            cells = dict(zip(header, row["cells"], strict=True))
            assert cells["sequential decision"] == want.seq_decision != ""
            assert cells["relative interval"] == (
                f"[{want.rel_ci_low:.4g}, {want.rel_ci_high:.4g}]"
            )


def test_experiment_view_charts_groups_with_intervals(client, example):
    from scipy import stats
    from statsmodels.stats.proportion import proportion_confint

    page = client.get(f"/ui/experiments/{EXPERIMENT}", params={"metric": "clicks"}).text
    series = json.loads(re.search(r'<script type="application/json" id="series">(.*?)</script>',
                                  page, re.S).group(1))  # fmt: skip
    assert series["batch"]["dates"] == [d.isoformat() for d in DAYS]
    assert series["stream"]["dates"] == [DAYS[-1].isoformat()]
    for source, found in series.items():
        for group, s in found["groups"].items():
            for i, day in enumerate(found["dates"]):
                counts = example.raw[(source, day, group)]
                mean, sem = counts.mean(), stats.sem(counts)
                low, high = stats.norm.interval(0.95, loc=mean, scale=sem)
                assert s["mean"][i] == pytest.approx(mean, rel=1e-12)
                assert (s["mean_low"][i], s["mean_high"][i]) == pytest.approx((low, high))
                hits = int((counts > 0).sum())
                r_low, r_high = proportion_confint(hits, len(counts), 0.05, method="normal")
                assert s["rate"][i] == pytest.approx(hits / len(counts))
                assert (s["rate_low"][i], s["rate_high"][i]) == pytest.approx((r_low, r_high))
    assert page.count('class="chart"') == 4  # mean and propensity, batch beside real time


def test_experiment_view_warns_of_a_sample_ratio_mismatch(client):
    from scipy import stats

    page = client.get(f"/ui/experiments/{EXPERIMENT}").text
    warnings = re.findall(r'<p class="warning" data-source="(\w+)" data-p="([^"]+)"', page)
    expected = stats.chisquare([1000, 800], [900, 900]).pvalue  # 50/50 allocation
    assert {s for s, _ in warnings} == {"batch", "stream"}
    assert all(float(p) == pytest.approx(expected, rel=1e-9) for _, p in warnings)
    assert "SRM warning" in page


def test_an_unknown_experiment_is_a_404(client):
    assert client.get("/ui/experiments/nope").status_code == 404


def test_experiments_list_links_each_experiment(client):
    rows = table(client.get("/ui/experiments").text, "experiments")[1:]
    assert [r["cells"][0] for r in rows] == [EXPERIMENT]


def test_realtime_view_without_jobs_or_reports_says_how_to_get_them(client):
    page = client.get("/ui/realtime").text
    assert "No streaming job is deployed" in page and "udf flink up" in page
    assert "No validation report yet" in page and "udf validate" in page
    assert f'data-experiment="{EXPERIMENT}"' in page  # the stream rows the store holds
    assert date(2026, 1, 3).isoformat() in page


def test_realtime_view_shows_validation_reports_and_deployed_jobs(client, home):
    import socket

    from metadata.repository import MetadataStore
    from streaming.runner import StreamState

    with MetadataStore.for_home(home) as store:
        store.record_validation(date(2026, 1, 2), passed=True, violations=0, threshold=0.02,
                                max_difference=0.0, report={})  # fmt: skip
        store.record_validation(date(2026, 1, 3), passed=False, violations=3, threshold=0.02,
                                max_difference=0.031, report={})  # fmt: skip
    with socket.socket() as s:  # a port nothing listens on: the cluster is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (home.root / "settings.yaml").write_text(f"flink:\n  rest_port: {port}\n")
    job = StreamState.of(home, "run").job_file
    job.parent.mkdir(parents=True, exist_ok=True)
    job.write_text(json.dumps({"mode": "run", "jobs": {
        "filter_events": {"job_id": "a" * 32, "submitted_at": 0},
        "aggregation": {"job_id": "b" * 32, "submitted_at": 0},
    }}))  # fmt: skip

    page = client.get("/ui/realtime").text
    rows = table(page, "validation-table")[1:]
    assert [(r["attrs"]["data-day"], r["attrs"]["data-passed"]) for r in rows] == [
        ("2026-01-03", "false"), ("2026-01-02", "true"),
    ]  # fmt: skip
    assert rows[0]["cells"][1:4] == ["VIOLATED", "3", "0.031"]
    run, aggregation = table(page, "jobs-table")[1:]  # the jobs apart: one row each
    assert run["attrs"] == {"data-mode": "run", "data-state": "unreachable"}
    assert run["cells"][1:3] == ["filter_events", "a" * 32] and f":{port}" in run["cells"][-1]
    assert aggregation["cells"][1:3] == ["aggregation", "b" * 32]
    assert "events 0 read" in run["cells"][7]  # the pipeline's progress line


def test_realtime_view_shows_each_experiments_real_time_health_alert(client, home):
    from metadata.records import AlertKey, AlertLook, Findings
    from metadata.repository import MetadataStore
    from streaming.alerts.health import REALTIME_SEGMENT
    from tests.integration.airflow.ui_example import RAMP

    page = client.get("/ui/realtime").text
    [row] = [r for r in table(page, "freshness-table")[1:] if r["attrs"].get("data-experiment")]
    assert row["attrs"]["data-assignment"] == "" and row["cells"][4] == "not watched"

    key = AlertKey(EXPERIMENT, "treatment", "clicks", int(RAMP.timestamp() * 1000),
                   REALTIME_SEGMENT)  # fmt: skip
    with MetadataStore.for_home(home) as store:
        for units, state, p in ((400, "ok", 0.4), (800, "alerting", 2.5e-5)):
            found = Findings(day=date(2026, 1, 3), units=units, method="always_valid_srm",
                             alpha=0.001, p_value=p, status="srm" if p < 0.001 else "")  # fmt: skip
            store.record_alert_looks([AlertLook(key, state, found)])
        [state] = [s for s in store.alert_states() if s.key == key]
    page = client.get("/ui/realtime").text
    [row] = [r for r in table(page, "freshness-table")[1:] if r["attrs"].get("data-experiment")]
    assert row["attrs"]["data-assignment"] == "alerting"
    since = state.changed_at.strftime("%Y-%m-%d %H:%M:%S")
    assert row["cells"][4] == f"ALERTING since {since}: srm (SRM p 2.5e-05 at 800 users)"


def test_views_need_a_platform_home(monkeypatch):
    from plugins.udf_plugin import airflow_user, create_app

    monkeypatch.delenv("UDF_HOME", raising=False)
    monkeypatch.setenv("UDF_METADATA_URL", "sqlite://")
    app = create_app()
    app.dependency_overrides[airflow_user] = lambda: "tester"
    answer = TestClient(app).get("/ui/realtime")
    assert answer.status_code == 503 and "UDF_HOME" in answer.json()["detail"]
