"""The validation report's email when the SMTP server is down: recorded, retried, sent once.

Hand-made rows (a 3% stream-batch difference) in a home of its own; a real SMTP server
(aiosmtpd) on a port where nothing listens at first. The retry is the daily validation
DAG's ``send_emails`` task, which Airflow retries while it fails.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import yaml
from aiosmtpd.controller import Controller

from metadata.records import RampRow
from metadata.repository import MetadataStore
from results.schema import ResultRow
from tests.integration.framework.conftest import SmtpServer, free_port
from udf.errors import UdfError
from udf.home import Home

DAY = date(2026, 1, 3)
RAMP = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
WINDOW_MS = 3 * 86_400_000


def row(source: str, day: str, group: str, volume: int) -> ResultRow:
    return ResultRow(
        experiment="exp_a", group=group, metric="click", metric_type="aggregated",
        period_start=RAMP, period_end=RAMP + WINDOW_MS, date=day, day_in=0, segment="",
        segment_value="", exposed=50, volume=volume, propensity=40, n=50, sum=60.0,
        sum_sq=180.0, source=source,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    home = Home.resolve(tmp_path / "home").ensure()
    for var in ("UDF_METADATA_URL", "UDF_RESULTS_URL", "UDF_RESULTS_STORE", "UDF_WINDOW_DAYS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("UDF_HOME", str(home.root))
    with MetadataStore.for_home(home) as store:
        store.import_ramps([RampRow("exp_a", "control", RAMP, 0.5),
                            RampRow("exp_a", "treatment", RAMP, 0.5)])  # fmt: skip
    from results.stores import open_store
    from udf.settings import load_settings

    with open_store(home, load_settings(home, {})) as results:
        results.upsert([
            row("stream", "2026-01-02", "control", 90), row("stream", "2026-01-02", "treatment", 90),
            row("stream", "2026-01-03", "control", 100), row("batch", "2026-01-03", "control", 100),
            row("stream", "2026-01-03", "treatment", 103),  # 3% more than the batch
            row("batch", "2026-01-03", "treatment", 100),
        ])  # fmt: skip
    return home


def test_smtp_down_during_a_validation_report_is_retried_recorded_and_sent_once(home) -> None:
    from streaming.validation.run import run_validation
    from udf.framework.validation_dag import send_emails
    from udf.settings import load_settings

    server = SmtpServer("127.0.0.1", free_port())  # not listening yet: the mail server is down
    (home.root / "settings.yaml").write_text(yaml.safe_dump({
        "alerts": {"smtp": {"host": "127.0.0.1", "port": server.port, "timeout_seconds": 5.0}},
        "validation": {"recipients": ["data-eng@example.com"]},
    }))  # fmt: skip
    settings = load_settings(home, {})
    outcome = run_validation(home, DAY, settings, recompute=False)
    assert not outcome.report.passed
    [v] = outcome.report.violations
    assert (v.rule, v.experiment, v.group, v.field) == ("agrees_with_batch", "exp_a", "treatment",
                                                        "volume")  # fmt: skip
    assert abs(v.difference - 0.03) < 1e-12 and outcome.report.max_difference == v.difference
    with MetadataStore.for_home(home) as store:
        [mail] = store.notifications(kind="validation")
        [stored] = store.validation_reports(day=DAY)
    assert outcome.emails_failed == [mail.id] and outcome.emails_sent == []
    assert (mail.state, mail.attempts) == ("failed", 1)
    assert "Connection refused" in (mail.last_error or "")
    assert (stored.passed, stored.violations, stored.max_difference) == (False, 1, v.difference)

    summary = {"passed": False, "summary": "x"}
    with pytest.raises(UdfError, match="not delivered"):
        send_emails(summary)  # the DAG's task fails while the server is down: Airflow retries it

    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()  # the mail server is back
    try:
        assert send_emails(summary)["emails_sent"] == [mail.id]
        assert send_emails(summary)["emails_sent"] == []  # sent once, not again
    finally:
        controller.stop()
    [received] = server.received
    assert received.rcpt_tos == ["data-eng@example.com"]
    assert received.message["Subject"] == mail.subject and "FAILED" in mail.subject
    text = received.message.get_body(("plain",)).get_content()
    assert "exp_a/treatment click" in text and "3.00%" in text
    with MetadataStore.for_home(home) as store:
        [sent] = store.notifications(kind="validation")
    assert (sent.state, sent.attempts) == ("sent", 3)
