"""``udf status`` and ``udf backfill`` (in-process, and through a fake Airflow REST API)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import ClassVar

import pytest
from click.testing import CliRunner

from metadata.repository import MetadataStore
from tests.unit.framework.support import DS, add_experiment, add_metrics, seal_through
from udf.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def history(home) -> None:
    with MetadataStore.for_home(home) as store:
        add_metrics(store, "click", "search")
        store.set_run_state("click", DS, "waiting_on_source", "events closed only through X")
        store.set_run_state("click", DS, "queued", "inputs ready", dag_run_id="scheduled__1")
        store.set_run_state("search", DS, "failed", "RuntimeError: boom")
        store.set_run_state("search", date(2026, 1, 1), "skipped", "outside the window")


def test_status_shows_states_reasons_and_filters(home, history) -> None:
    table = run("status")
    assert table.exit_code == 0, table.output
    assert "3 metric-day(s): 1 failed, 1 queued, 1 skipped" in table.output
    assert "RuntimeError: boom" in table.output and "scheduled__1" in table.output
    rows = json.loads(run("status", "--format", "json", "--date", str(DS)).output)
    assert [(r["metric"], r["state"], r["reason"]) for r in rows] == [
        ("click", "queued", "inputs ready"),
        ("search", "failed", "RuntimeError: boom"),
    ]
    assert rows[0]["updated_at"].endswith("Z") and rows[0]["dag_run_id"] == "scheduled__1"
    failed = json.loads(run("status", "--format", "json", "--state", "failed").output)
    assert [r["metric"] for r in failed] == ["search"]
    ranged = json.loads(
        run(
            "status",
            "--format",
            "json",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
            "--metric",
            "search",
        ).output
    )
    assert [(r["ds"], r["state"]) for r in ranged] == [("2026-01-01", "skipped")]
    other = json.loads(run("status", "--format", "json", "--metric-type", "custom").output)
    assert other == []


def test_status_history_lists_every_transition(home, history) -> None:
    rows = json.loads(run("status", "--history", "--metric", "click", "--format", "json").output)
    assert [(e["from"], e["to"], e["reason"]) for e in rows[0]["events"]] == [
        (None, "waiting_on_source", "events closed only through X"),
        ("waiting_on_source", "queued", "inputs ready"),
    ]
    table = run("status", "--history", "--metric", "click")
    assert "waiting_on_source" in table.output and "history of 1 metric-day(s)" in table.output


def test_status_lists_the_notifications_ledger(home, history) -> None:
    with MetadataStore.for_home(home) as store:
        sent = store.record_notification("ana@example.com", "digest", "[udf] 1 delayed", "", [1])
        store.mark_notification(sent, "sent")
        failed = store.record_notification("bob@example.com", "digest", "[udf] 1 skipped", "", [2])
        store.mark_notification(failed, "failed", "ConnectionRefusedError: refused")
    rows = json.loads(run("status", "--notifications", "--format", "json").output)
    assert [(r["recipient"], r["state"], r["attempts"], r["error"]) for r in rows] == [
        ("ana@example.com", "sent", 1, ""),
        ("bob@example.com", "failed", 1, "ConnectionRefusedError: refused"),
    ]
    assert "2 notification(s)" in run("status", "--notifications").output


def test_status_refuses_bad_dates(home) -> None:
    assert "expected YYYY-MM-DD" in run("status", "--date", "yesterday").output
    assert "not both" in run("status", "--date", "2026-01-01", "--from", "2026-01-01").output
    assert run("status", "--from", "2026-01-05", "--to", "2026-01-01").exit_code == 1
    assert run("status", "--state", "lost").exit_code == 2


@pytest.fixture
def fake_compute(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []

    def compute(home, metric_type, dates, *, metrics=None, experiments=None, settings=None):
        calls.append(
            {"dates": list(dates), "metrics": list(metrics or []), "experiments": experiments}
        )
        return SimpleNamespace(rows=1)

    monkeypatch.setattr("udf.framework.tasks._default_compute", lambda: compute)
    return calls


@pytest.fixture
def ready_home(home) -> None:
    with MetadataStore.for_home(home) as store:
        add_metrics(store, "click", "search")
        add_experiment(store)
    seal_through(home, DS)


def test_backfill_in_process_computes_and_reports(home, ready_home, fake_compute) -> None:
    result = run(
        "backfill",
        "--metric-type",
        "aggregated",
        "--from",
        "2026-01-04",
        "--to",
        str(DS),
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    [out] = json.loads(result.output)
    assert {(r["ds"], r["state"]) for r in out["runs"]} >= {
        ("2026-01-04", "done"),
        (str(DS), "done"),
    }
    assert [c["dates"] for c in fake_compute][-2:] == [[date(2026, 1, 4)], [DS]]
    # A second backfill recomputes (force) but only the metric and experiment asked for.
    again = run(
        "backfill",
        "--metric-type",
        "aggregated",
        "--from",
        str(DS),
        "--to",
        str(DS),
        "--metric",
        "click",
        "--experiment",
        "exp",
    )
    assert again.exit_code == 0, again.output
    assert fake_compute[-1] == {"dates": [DS], "metrics": ["click"], "experiments": ["exp"]}
    assert "metric-days after the backfill" in again.output
    # --missing-only leaves done days alone.
    before = len(fake_compute)
    quiet = run(
        "backfill",
        "--metric-type",
        "aggregated",
        "--from",
        str(DS),
        "--to",
        str(DS),
        "--missing-only",
    )
    assert quiet.exit_code == 0 and len(fake_compute) == before


def test_backfill_in_process_failure_exits_non_zero(home, ready_home, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("cluster down")

    monkeypatch.setattr("udf.framework.tasks._default_compute", lambda: broken)
    result = run("backfill", "--metric-type", "aggregated", "--from", str(DS), "--to", str(DS))
    assert result.exit_code == 1
    assert "batch(es) failed" in result.output and "RuntimeError: cluster down" in result.output


def test_backfill_refuses_unknown_metrics_and_bad_ranges(home, ready_home, fake_compute) -> None:
    unknown = run(
        "backfill",
        "--metric-type",
        "aggregated",
        "--from",
        str(DS),
        "--to",
        str(DS),
        "--metric",
        "nope",
    )
    assert unknown.exit_code == 1 and "'nope'" in unknown.output
    backwards = run(
        "backfill", "--metric-type", "aggregated", "--from", str(DS), "--to", "2026-01-01"
    )
    assert backwards.exit_code == 1 and "before" in backwards.output
    # Airflow-only options are refused in-process rather than ignored (and nothing computed)
    for option in (["--unpause"], ["--max-active-runs", "2"]):
        refused = run("backfill", "--metric-type", "aggregated", "--from", str(DS), "--to",
                      str(DS), *option)  # fmt: skip
        assert refused.exit_code == 1 and f"{option[0]} needs --server" in refused.output
    assert fake_compute == []


def test_an_unselected_metric_costs_no_compute_no_email_and_status_says_why(
    home, fake_compute
) -> None:
    """A configured metric no experiment selects: no batch (so no Spark), no digest, a reason."""
    from datetime import UTC, datetime, timedelta

    from udf.framework.notify import notify_owners

    with MetadataStore.for_home(home) as store:
        add_metrics(store, "click", owners=["click@example.com"])
        add_metrics(store, "orphan", owners=["orphan@example.com"])
        add_experiment(store, metrics=["click"])
    seal_through(home, DS)
    result = run("backfill", "--metric-type", "aggregated", "--from", str(DS), "--to", str(DS))
    assert result.exit_code == 0, result.output
    assert [c["metrics"] for c in fake_compute] == [["click"]]  # no compute() for orphan

    sent: list = []
    with MetadataStore.for_home(home) as store:
        # Long after every SLA: a waiting metric-day would be reported as late by now.
        report = notify_owners(store, sent.append, now=datetime.now(UTC) + timedelta(days=400))
    assert sent == [] and report.sent == []

    status = run("status", "--metric", "orphan", "--format", "json")
    [orphan] = json.loads(status.output)
    assert (orphan["state"], orphan["reason"]) == (
        "not_selected",
        "no experiment selects it (the catalog's experiments[].metrics)",
    )
    table = run("status", "--state", "not_selected")
    assert table.exit_code == 0 and "orphan" in table.output and "1 not_selected" in table.output


def test_backfill_refuses_an_unknown_experiment(home, ready_home, fake_compute) -> None:
    # `--experiment nosuch` was accepted: every metric-day was planned and recorded for it.
    result = run(
        "backfill", "--metric-type", "aggregated", "--from", str(DS), "--to", str(DS),
        "--experiment", "nosuch",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == "error: no experiment named 'nosuch'; import its ramps first\n"
    assert fake_compute == []
    with MetadataStore.for_home(home) as store:
        assert store.runs(scope="nosuch") == []


class FakeAirflow(BaseHTTPRequestHandler):
    """/auth/token and /api/v2/backfills as Airflow 3 serves them (simple auth manager)."""

    requests: ClassVar[list[tuple[str, str, dict, str | None]]] = []
    conflict = False

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        FakeAirflow.requests.append(("POST", self.path, body, self.headers.get("Authorization")))
        if self.path == "/auth/token":
            if body == {"username": "admin", "password": "secret"}:
                self._answer(201, {"access_token": "jwt-123"})
            else:
                self._answer(401, {"detail": "Invalid credentials"})
        elif self.path == "/api/v2/backfills":
            if self.headers.get("Authorization") != "Bearer jwt-123":
                self._answer(401, {"detail": "Not authenticated"})
            elif FakeAirflow.conflict:
                self._answer(
                    409, {"detail": f"There is already a running backfill for dag {body['dag_id']}"}
                )
            else:
                self._answer(200, {"id": 7, **body})
        else:
            self._answer(404, {"detail": "Not Found"})

    def do_GET(self) -> None:
        FakeAirflow.requests.append(("GET", self.path, {}, self.headers.get("Authorization")))
        if self.path.startswith("/api/v2/dags/") and self._authorised():
            self._answer(
                200, {"dag_id": self.path.rsplit("/", 1)[1], "is_paused": FakeAirflow.paused}
            )
        else:
            self._answer(403, {"detail": "simple_auth_manager_all_admins is off"})

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        FakeAirflow.requests.append(("PATCH", self.path, body, self.headers.get("Authorization")))
        if self.path.startswith("/api/v2/dags/") and self._authorised():
            FakeAirflow.paused = body["is_paused"]
            self._answer(
                200, {"dag_id": self.path.rsplit("/", 1)[1], "is_paused": FakeAirflow.paused}
            )
        else:
            self._answer(403, {"detail": "Forbidden"})

    def _authorised(self) -> bool:
        return self.headers.get("Authorization") == "Bearer jwt-123"

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def airflow() -> Iterator[str]:
    FakeAirflow.requests = []
    FakeAirflow.conflict = False
    FakeAirflow.paused = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_backfill_through_airflows_rest_api(home, airflow) -> None:
    result = run(
        "backfill",
        "--metric-type",
        "days_in",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-04",
        "--metric",
        "saves_days_in",
        "--experiment",
        "exp",
        "--server",
        airflow + "/",
        "--user",
        "admin",
        "--password",
        "secret",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    token, dag, backfill = FakeAirflow.requests
    assert token[:3] == ("POST", "/auth/token", {"username": "admin", "password": "secret"})
    assert dag == ("GET", "/api/v2/dags/udf_days_in", {}, "Bearer jwt-123")
    method, path, body, auth = backfill
    assert (method, path, auth) == ("POST", "/api/v2/backfills", "Bearer jwt-123")
    conf = body.pop("dag_run_conf")
    assert body == {
        "dag_id": "udf_days_in",
        "from_date": "2026-01-02T00:00:00Z",
        "to_date": "2026-01-04T23:59:59Z",
        "reprocess_behavior": "completed",
        "max_active_runs": 1,
    }
    assert conf["scope"] == "exp" and conf["metrics"] == ["saves_days_in"] and conf["force"] is True
    assert "requested_at" in conf
    # The range travels with the runs, so none plans a day outside it.
    assert (conf["from_date"], conf["to_date"]) == ("2026-01-02", "2026-01-04")
    assert json.loads(result.output)[0]["id"] == 7


def test_backfill_server_errors_are_one_line(home, airflow) -> None:
    bad_login = run(
        "backfill",
        "--metric-type",
        "aggregated",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-02",
        "--server",
        airflow,
        "--user",
        "admin",
        "--password",
        "wrong",
    )
    assert bad_login.exit_code == 1
    assert "HTTP 401: Invalid credentials" in bad_login.output
    FakeAirflow.conflict = True
    busy = run(
        "backfill",
        "--metric-type",
        "aggregated",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-02",
        "--server",
        airflow,
        "--user",
        "admin",
        "--password",
        "secret",
    )
    assert (
        busy.exit_code == 1 and "already a running backfill for dag udf_aggregated" in busy.output
    )
    nobody = run(
        "backfill",
        "--metric-type",
        "aggregated",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-02",
        "--server",
        airflow,
    )
    assert nobody.exit_code == 1 and "HTTP 403" in nobody.output  # GET /auth/token refused
    down = run(
        "backfill",
        "--metric-type",
        "aggregated",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-02",
        "--server",
        "http://127.0.0.1:9",
        "--user",
        "a",
        "--password",
        "b",
    )
    assert down.exit_code == 1 and "cannot reach the server" in down.output
    assert len(down.output.strip().splitlines()) == 1


def test_a_paused_dag_is_refused_unless_unpause_is_asked_for(home, airflow) -> None:
    FakeAirflow.paused = True
    args = ["backfill", "--metric-type", "aggregated", "--from", "2026-01-02", "--to", "2026-01-02",
            "--server", airflow, "--user", "admin", "--password", "secret"]  # fmt: skip
    refused = run(*args)
    assert refused.exit_code == 1
    assert "udf_aggregated is paused" in refused.output and "--unpause" in refused.output
    assert not any(r[1] == "/api/v2/backfills" for r in FakeAirflow.requests)  # nothing created
    done = run(*args, "--unpause")
    assert done.exit_code == 0, done.output
    assert "udf_aggregated was paused" in done.output and "unpaused it" in done.output
    methods = [(r[0], r[1]) for r in FakeAirflow.requests[-4:]]
    assert methods == [("POST", "/auth/token"), ("GET", "/api/v2/dags/udf_aggregated"),
                       ("PATCH", "/api/v2/dags/udf_aggregated"), ("POST", "/api/v2/backfills")]  # fmt: skip
    assert FakeAirflow.paused is False
    assert run("backfill", *args[1:7], "--unpause").exit_code == 1  # needs --server


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--health", "--metric", "click"], "--metric does not apply to --health"),
        (["--validation", "--from", "2026-01-01"], "--from does not apply to --validation"),
        (["--alerts", "--state", "done", "--date", "2026-01-01"],
         "--date, --state does not apply to --alerts"),
        (["--notifications", "--experiment", ""], "--experiment does not apply to --notifications"),
        (["--health", "--alerts"], "--health and --alerts are different views"),
        (["--health", "--date", "2026-01-02", "--from", "2026-01-01"], "not both"),
    ],
)  # fmt: skip
def test_status_refuses_filters_its_view_would_ignore(home, args: list[str], message: str) -> None:
    result = run("status", *args)
    assert result.exit_code == 1 and message in result.output, result.output
