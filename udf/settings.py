"""Platform settings: ``<home>/settings.yaml`` (optional), then ``UDF_*`` environment overrides.

Everything has a default that runs on one machine with nothing installed beyond the
platform: Spark ``local[*]``, the embedded SQLite results store, a 3-day window and a spam
cap of 1,000 events per user and hour (the contract §3)::

    window_days: 3
    spam_cap: 1000
    custom_timeout_seconds: 1800  # per custom metric and day; a metric's own timeout_seconds wins
    spark:
      master: local[*]            # or spark://host:7077, yarn, k8s://...
      remote: null                # a Spark Connect endpoint (sc://host:15002) instead
      conf: {spark.driver.memory: 4g}
    results:
      store: embedded             # or druid
      url: null                   # SQLAlchemy URL; default sqlite:///<home>/results.db
      druid: {router: http://druid-router:8888, datasource: udf_results}
    alerts:                       # real-time alerts (udf.config.alerts.AlertSettings)
      email_from: udf@example.com
      smtp: {host: mail.example.com, port: 587, starttls: true, user: udf}
      webhooks: {ops: https://hooks.slack.com/services/T000/B000/XXXX}

Environment overrides (for containers and Airflow workers): ``UDF_WINDOW_DAYS``,
``UDF_SPAM_CAP``, ``UDF_CUSTOM_TIMEOUT_SECONDS``, ``UDF_SPARK_MASTER``, ``UDF_SPARK_REMOTE``,
``UDF_RESULTS_STORE``, ``UDF_RESULTS_URL``, ``UDF_DRUID_ROUTER``, ``UDF_DRUID_DATASOURCE``,
``UDF_ALERTS_ENABLED``, ``UDF_ALERTS_EMAIL_FROM``, ``UDF_ALERTS_SMTP_HOST``, ``UDF_ALERTS_SMTP_PORT``,
``UDF_ALERTS_SMTP_USER``, ``UDF_ALERTS_SMTP_PASSWORD``, ``UDF_ALERTS_SMTP_CONN_ID``, and
``UDF_ALERTS_WEBHOOK_<NAME>`` (the URL of webhook ``<name>``, lower-cased; webhook URLs and
passwords are secrets, so the environment is the place for them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, ValidationError, field_validator

from udf.config.alerts import AlertSettings
from udf.config.loader import FileProblem, issues_from_validation, read_yaml
from udf.config.models import StrictModel
from udf.errors import ConfigError, ConfigIssue
from udf.home import Home
from udf.vocabulary import DEFAULT_SPAM_CAP, DEFAULT_WINDOW_DAYS

SETTINGS_FILE = "settings.yaml"


class SparkSettings(StrictModel):
    master: str = "local[*]"
    remote: str | None = None
    conf: dict[str, str] = Field(default_factory=dict)


class DruidSettings(StrictModel):
    router: str = "http://localhost:8888"
    datasource: str = "udf_results"
    timeout_seconds: PositiveFloat = 600.0


class ResultsSettings(StrictModel):
    store: Literal["embedded", "druid"] = "embedded"
    url: str | None = None
    druid: DruidSettings = Field(default_factory=DruidSettings)


class Settings(StrictModel):
    window_days: PositiveFloat = DEFAULT_WINDOW_DAYS
    spam_cap: PositiveInt = DEFAULT_SPAM_CAP
    custom_timeout_seconds: PositiveFloat = 1800.0
    spark: SparkSettings = Field(default_factory=SparkSettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    @field_validator("window_days")
    @classmethod
    def _window_in_range(cls, days: float) -> float:
        from metadata.periods import window_ms

        window_ms(days)  # nan, inf and 1e-9 are refused here, not deep in a computation
        return days

    @property
    def window_ms(self) -> int:
        from metadata.periods import window_ms

        return window_ms(self.window_days)

    def results_url(self, home: Home) -> str:
        return self.results.url or f"sqlite:///{home.root / 'results.db'}"


_ENV: dict[str, tuple[str, ...]] = {
    "UDF_WINDOW_DAYS": ("window_days",),
    "UDF_SPAM_CAP": ("spam_cap",),
    "UDF_CUSTOM_TIMEOUT_SECONDS": ("custom_timeout_seconds",),
    "UDF_SPARK_MASTER": ("spark", "master"),
    "UDF_SPARK_REMOTE": ("spark", "remote"),
    "UDF_RESULTS_STORE": ("results", "store"),
    "UDF_RESULTS_URL": ("results", "url"),
    "UDF_DRUID_ROUTER": ("results", "druid", "router"),
    "UDF_DRUID_DATASOURCE": ("results", "druid", "datasource"),
    "UDF_ALERTS_ENABLED": ("alerts", "enabled"),
    "UDF_ALERTS_EMAIL_FROM": ("alerts", "email_from"),
    "UDF_ALERTS_SMTP_HOST": ("alerts", "smtp", "host"),
    "UDF_ALERTS_SMTP_PORT": ("alerts", "smtp", "port"),
    "UDF_ALERTS_SMTP_USER": ("alerts", "smtp", "user"),
    "UDF_ALERTS_SMTP_PASSWORD": ("alerts", "smtp", "password"),
    "UDF_ALERTS_SMTP_CONN_ID": ("alerts", "smtp", "conn_id"),
}
_WEBHOOK_PREFIX = "UDF_ALERTS_WEBHOOK_"  # + NAME: one webhook's URL


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(value)
    return lowered in ("true", "1", "yes")


_TYPED: dict[str, Callable[[str], Any]] = {
    "UDF_WINDOW_DAYS": float,
    "UDF_SPAM_CAP": int,
    "UDF_CUSTOM_TIMEOUT_SECONDS": float,
    "UDF_ALERTS_SMTP_PORT": int,
    "UDF_ALERTS_ENABLED": _boolean,
}


def load_settings(home: Home, environ: dict[str, str] | None = None) -> Settings:
    """The home's settings file (if any) with the environment's overrides applied."""
    environ = dict(os.environ if environ is None else environ)
    path = home.root / SETTINGS_FILE
    raw: dict[str, Any] = {}
    issues: list[ConfigIssue] = []
    if path.exists():
        try:
            raw = read_yaml(path) or {}
        except FileProblem as exc:
            raise ConfigError([ConfigIssue(str(path), exc.field, str(exc))]) from None
        if not isinstance(raw, dict):
            raise ConfigError([ConfigIssue(str(path), "", "expected a mapping of settings")])
    overrides = dict(_ENV)
    for var in environ:
        name = var[len(_WEBHOOK_PREFIX) :]
        if var.startswith(_WEBHOOK_PREFIX) and name:
            overrides[var] = ("alerts", "webhooks", name.lower())
    for var, where in overrides.items():
        if var not in environ or environ[var] == "":
            continue
        value: Any = environ[var]
        if var in _TYPED:
            try:
                value = _TYPED[var](value)
            except ValueError:
                kind = "true or false" if var == "UDF_ALERTS_ENABLED" else "a number"
                issues.append(ConfigIssue(var, "", f"not {kind}: {value!r}"))
                continue
        node = raw
        for part in where[:-1]:
            node = node.setdefault(part, {})
        node[where[-1]] = value
    if issues:
        raise ConfigError(issues)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(issues_from_validation(str(path), exc, raw)) from None


def settings_path(home: Home) -> Path:
    return home.root / SETTINGS_FILE
