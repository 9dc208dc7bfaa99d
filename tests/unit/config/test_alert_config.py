"""Alert configuration: rules in the catalog, delivery in the settings, every error named."""

from __future__ import annotations

from pathlib import Path

import pytest

from udf.config.loader import load_catalog
from udf.errors import ConfigError
from udf.home import Home
from udf.settings import load_settings

CATALOG = """
metrics:
  - name: revenue
    type: aggregated
    event_type: purchase
    statistic: sum
    owners: [ana@example.com]
    alert: {direction: decrease, recipients: [Oncall@Example.com], webhooks: [ops]}
  - name: clicks
    type: aggregated
    event_type: click
experiments:
  - experiment: exp_001
    metrics: [revenue, clicks]
    alerts:
      recipients: [pm@example.com]
      metrics: {clicks: {direction: increase, segments: true, alpha: 0.01}}
"""


def test_rules_load_from_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(CATALOG)
    loaded = load_catalog([tmp_path])
    assert loaded.ok
    [catalog] = loaded.files.values()
    revenue, clicks = catalog.metrics
    assert revenue.alert is not None and revenue.alert.direction == "decrease"
    assert revenue.alert.recipients == ["oncall@example.com"] and revenue.alert.webhooks == ["ops"]
    assert clicks.alert is None
    alerts = catalog.experiments[0].alerts
    assert alerts.enabled and alerts.recipients == ["pm@example.com"]
    rule = alerts.metrics["clicks"]
    assert (rule.direction, rule.segments, rule.alpha, rule.webhooks) == (
        "increase",
        True,
        0.01,
        None,
    )
    assert "alert" not in revenue.params()  # stored in its own column, not with the type's


def test_every_alert_error_is_named_with_its_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        CATALOG.replace("direction: decrease", "direction: down")
        .replace("webhooks: [ops]", "webhooks: [ops], colour: red")
        .replace("alpha: 0.01", "alpha: 0.7")
    )
    (tmp_path / "unselected.yaml").write_text(
        "experiments:\n  - experiment: exp_002\n    metrics: [clicks]\n"
        "    alerts: {metrics: {saves: {direction: any}}}\n"
    )
    loaded = load_catalog([tmp_path])
    issues = sorted((Path(i.file).name, i.field, i.message) for i in loaded.issues)
    assert [(file, field) for file, field, _ in issues] == [
        ("bad.yaml", "experiments[0] (exp_001).alerts.metrics.clicks.alpha"),
        # selections of metrics from a file with errors are reported with the file's own
        ("bad.yaml", "experiments[0] (exp_001).metrics[0]"),
        ("bad.yaml", "experiments[0] (exp_001).metrics[1]"),
        ("bad.yaml", "metrics[0] (revenue).alert.colour"),
        ("bad.yaml", "metrics[0] (revenue).alert.direction"),
        ("unselected.yaml", "experiments[0] (exp_002)"),
        ("unselected.yaml", "experiments[0] (exp_002).metrics[0]"),
    ]
    assert "'decrease', 'increase' or 'any'" in issues[4][2]
    assert "alerts.metrics names saves, not among the experiment's metrics" in issues[5][2]
    assert "is defined in" in issues[6][2] and "which has errors" in issues[6][2]


def test_delivery_settings_from_the_file_and_the_environment(tmp_path: Path) -> None:
    home = Home(tmp_path)
    (tmp_path / "settings.yaml").write_text(
        "alerts:\n  email_from: alerts@example.com\n  webhooks: {ops: 'https://chat.example.com/hook/1'}\n"
        "  smtp: {host: mail.example.com, port: 587, starttls: true}\n"
    )
    env = {
        "UDF_ALERTS_WEBHOOK_DEV": "http://127.0.0.1:8080/hook",
        "UDF_ALERTS_SMTP_PASSWORD": "s3cret",
        "UDF_ALERTS_SMTP_PORT": "2525",
        "UDF_ALERTS_ENABLED": "yes",
    }
    alerts = load_settings(home, env).alerts
    assert alerts.webhooks == {
        "ops": "https://chat.example.com/hook/1",
        "dev": "http://127.0.0.1:8080/hook",
    }
    assert alerts.smtp.port == 2525 and alerts.smtp.host == "mail.example.com"
    assert alerts.smtp.password is not None and alerts.smtp.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(alerts)
    assert alerts.enabled and alerts.max_attempts == 5
    assert load_settings(home, {"UDF_ALERTS_ENABLED": "0"}).alerts.enabled is False
    assert load_settings(Home(tmp_path / "none"), {}).alerts.webhooks == {}


def test_bad_delivery_settings_are_all_reported(tmp_path: Path) -> None:
    home = Home(tmp_path)
    with pytest.raises(ConfigError) as env_errors:
        load_settings(home, {"UDF_ALERTS_SMTP_PORT": "smtp", "UDF_ALERTS_ENABLED": "maybe"})
    assert [i.file for i in env_errors.value.issues] == [
        "UDF_ALERTS_ENABLED",
        "UDF_ALERTS_SMTP_PORT",
    ]
    (tmp_path / "settings.yaml").write_text(
        "alerts:\n  webhooks: {ops: 'ftp://chat.example.com'}\n  smtp: {port: 0}\n  max_attempts: 0\n"
    )
    with pytest.raises(ConfigError) as file_errors:
        load_settings(home, {})
    assert sorted(i.field for i in file_errors.value.issues) == [
        "alerts.max_attempts",
        "alerts.smtp.port",
        "alerts.webhooks.ops",
    ]
