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

Environment overrides (for containers and Airflow workers): ``UDF_WINDOW_DAYS``,
``UDF_SPAM_CAP``, ``UDF_CUSTOM_TIMEOUT_SECONDS``, ``UDF_SPARK_MASTER``, ``UDF_SPARK_REMOTE``,
``UDF_RESULTS_STORE``, ``UDF_RESULTS_URL``, ``UDF_DRUID_ROUTER``, ``UDF_DRUID_DATASOURCE``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PositiveFloat, PositiveInt, ValidationError

from udf.config.loader import FileProblem, issues_from_validation, read_yaml
from udf.config.models import StrictModel
from udf.errors import ConfigError, ConfigIssue
from udf.home import Home

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
    window_days: PositiveFloat = 3.0
    spam_cap: PositiveInt = 1000
    custom_timeout_seconds: PositiveFloat = 1800.0
    spark: SparkSettings = Field(default_factory=SparkSettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)

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
}
_NUMERIC = {"UDF_WINDOW_DAYS": float, "UDF_SPAM_CAP": int, "UDF_CUSTOM_TIMEOUT_SECONDS": float}


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
    for var, where in _ENV.items():
        if var not in environ or environ[var] == "":
            continue
        value: Any = environ[var]
        if var in _NUMERIC:
            try:
                value = _NUMERIC[var](value)
            except ValueError:
                issues.append(ConfigIssue(var, "", f"not a number: {value!r}"))
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
