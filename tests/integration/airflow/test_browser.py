"""The UI views in a real browser: headless Chromium (Debian's package) driven by Playwright.

A generated workload is computed by the aggregated pipeline (``dag.test()``, Spark) on the
session's Airflow; then ``airflow api-server`` serves the plugin with that platform's home
and metadata store. The test logs in through Airflow's login page, opens each view from
Airflow's navigation (``/plugin/<url_route>``, the view in an iframe), compares the numbers
shown with the metadata and results stores, triggers a range backfill from the tracking
view and sees the run appear, and saves a screenshot of every step (in
``$UDF_TEST_ARTIFACTS`` if set, else the test's temporary folder; the path is printed).

Install the browser with ``apt-get install -y chromium``: without it the test is skipped
and says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from tests.integration.airflow.test_api_server import PASSWORD, USER, get, serve_api
from tests.integration.airflow.test_views import concrete_paths

CHROMIUM = os.environ.get("UDF_CHROMIUM") or shutil.which("chromium")
pytestmark = [
    pytest.mark.airflow, pytest.mark.postgres, pytest.mark.spark, pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed: "
                       "apt-get install -y chromium (or set UDF_CHROMIUM to a Chromium binary)"),
]  # fmt: skip

D2, D3, D4 = (date(2026, 1, d) for d in (2, 3, 4))


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("UDF_TEST_ARTIFACTS") or tmp_path) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def test_the_views_in_a_browser(airflow_session, platform, tmp_path, shots):
    from playwright.sync_api import expect, sync_playwright

    from plugins.udf_plugin import create_app
    from tests.integration.airflow.harness import run_dag

    # The workload: events sealed through D3 only, so the run for D4 computes its look-back
    # days D2 and D3 and leaves D4 waiting on its events.
    platform.seal("activations", "2026-01-04")
    platform.seal("events", "2026-01-03")
    assert run_dag(airflow_session.dag("udf_aggregated"), ds=D4).state == "success"
    runs = platform.runs()
    assert {r.state for r in runs} == {"done", "waiting_on_source"}
    results = platform.results(metric_type="aggregated")
    assert {r.date for r in results} == {"2026-01-02", "2026-01-03"}

    env = {"UDF_HOME": str(platform.home.root), "UDF_METADATA_URL": platform.metadata_url}
    with serve_api(airflow_session, env, tmp_path) as base, sync_playwright() as pw:
        for method, path in concrete_paths(create_app()):
            if method == "GET":  # every route of the plugin refuses anonymous callers
                assert get(f"{base}/udf{path}")[0] == 401, path

        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(30_000)

        # Log in through Airflow's own login page.
        page.goto(f"{base}/")
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.screenshot(path=shots / "01-login.png")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/(\?.*)?$"))
        assert any(c["name"] == "_token" for c in page.context.cookies())

        # Metric tracking: one row per metric-day, as the metadata store has them.
        page.goto(f"{base}/plugin/udf-tracking")
        view = page.frame_locator("iframe")
        expect(view.locator("#runs tbody tr")).to_have_count(len(runs))
        for run in runs:
            row = view.locator(
                f'#runs tr[data-metric="{run.metric}"][data-ds="{run.ds}"]'
                f'[data-experiment="{run.scope}"]'
            )
            expect(row).to_have_attribute("data-state", run.state)
        expect(view.locator("#counts")).to_contain_text(f"{len(runs)} metric-day(s)")
        page.screenshot(path=shots / "02-tracking.png", full_page=True)

        # Trigger a range backfill of one experiment from the view; the run appears.
        experiment = platform.experiments[0]
        form = view.locator("#trigger")
        form.locator("select[name=experiment]").select_option(experiment)
        form.locator("input[name=metrics]").fill("clicks")
        form.locator("input[name=from_date]").fill(D2.isoformat())
        form.locator("input[name=to_date]").fill(D3.isoformat())
        form.locator("#range-backfill").click()
        expect(view.locator("#trigger-result")).to_contain_text("Triggered udf_range_backfill")
        run_id = view.locator("#trigger-result").inner_text().split("run ")[1].split(" ")[0]
        expect(view.locator("#recent-runs")).to_contain_text(run_id)
        page.screenshot(path=shots / "03-backfill-triggered.png", full_page=True)
        token = get(f"{base}/auth/token", body={"username": USER, "password": PASSWORD})[1]
        bearer = json.loads(token)["access_token"]
        status, body = get(f"{base}/api/v2/dags/udf_range_backfill/dagRuns/{run_id}", bearer)
        assert status == 200, body
        assert json.loads(body)["conf"] == {
            "experiment": experiment, "metric_type": "aggregated", "metrics": ["clicks"],
            "from_date": "2026-01-02", "to_date": "2026-01-03", "force": False,
        }  # fmt: skip

        # Experiment results: the comparisons at the latest day, as the results store has them.
        page.goto(f"{base}/plugin/udf-experiments")
        view = page.frame_locator("iframe")
        view.locator(f"#experiments a:text-is('{experiment}')").click()
        expect(view.locator("h1")).to_have_text(f"Experiment {experiment}")
        with platform.store() as store:
            info = store.experiment(experiment)
        assert info is not None
        controls = {g.name for g in info.groups if g.is_control}
        latest = {
            (r.metric, r.group, r.period_start): r
            for r in results
            if r.experiment == experiment and r.date == "2026-01-03" and not r.segment
            and r.group not in controls
        }  # fmt: skip
        shown = view.locator("#comparisons tbody tr")
        expect(shown).to_have_count(len(latest))
        headers = view.locator("#comparisons thead th").all_inner_texts()
        for (metric, group, period), want in latest.items():
            cells = view.locator(
                f'#comparisons tr[data-metric="{metric}"][data-group="{group}"]'
                f'[data-period="{period}"] td'
            )
            values = dict(zip(headers, [cells.nth(i).get_attribute("data-value")
                                        for i in range(len(headers))], strict=True))  # fmt: skip
            assert float(values["relative lift"]) == want.lift_rel
            assert float(values["p-value"]) == want.p_value
            assert float(values["corrected p"]) == want.p_value_adjusted
        expect(view.locator(".uplot canvas")).to_have_count(2)  # batch: mean and propensity
        expect(view.locator('.panel[data-source="stream"] .empty')).to_be_visible()
        page.screenshot(path=shots / "04-experiment.png", full_page=True)

        # Real-time health: no job deployed and no validation yet, and it says how to get them.
        page.goto(f"{base}/plugin/udf-realtime")
        view = page.frame_locator("iframe")
        expect(view.locator("#jobs")).to_contain_text("udf flink up")
        expect(view.locator("#validation")).to_contain_text("udf validate")
        page.screenshot(path=shots / "05-realtime.png", full_page=True)
        browser.close()
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-login.png", "02-tracking.png", "03-backfill-triggered.png", "04-experiment.png",
        "05-realtime.png",
    ]  # fmt: skip
