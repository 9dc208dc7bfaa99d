"""Alert configuration: which metric moves are alarming (catalog) and where alerts go (settings).

A metric opts in to real-time alerts in the catalog; an experiment may switch alerts off,
add recipients or set its own rules; the platform settings say how messages are delivered::

    metrics:
      - name: revenue
        ...
        alert:
          direction: decrease     # the harmful move: decrease | increase | any
    experiments:
      - experiment: exp_001
        metrics: [revenue, clicks]
        alerts:
          recipients: [pm@example.com]
          metrics: {clicks: {direction: increase}}   # this experiment's own rule

    # <home>/settings.yaml
    alerts:
      email_from: udf@example.com
      smtp: {host: mail.example.com, port: 587, starttls: true, user: udf}
      webhooks: {ops: https://hooks.slack.com/services/T000/B000/XXXX}

The statistics behind an alert (an always-valid test) are in :mod:`streaming.alerts.decision`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, PositiveFloat, PositiveInt, SecretStr

from udf.config.models import Email, Identifier, StrictModel

Direction = Literal["decrease", "increase", "any"]
DEFAULT_FROM = "udf@localhost"


class AlertRule(StrictModel):
    """Alert when a treatment moves the metric significantly in ``direction``.

    The metric's owners are told, and ``recipients`` too; ``webhooks`` names entries of the
    settings' ``alerts.webhooks`` (all of them when not given, none with ``[]``). Only whole
    groups are watched unless ``segments`` is set (then every segment value is watched too).
    ``alpha`` defaults to the experiment's ``analysis.alpha``.
    """

    direction: Direction
    recipients: list[Email] = Field(default_factory=list)
    webhooks: list[Identifier] | None = None
    segments: bool = False
    alpha: float | None = Field(default=None, gt=0, lt=0.5)


class ExperimentAlerts(StrictModel):
    """An experiment's alerting: on or off, who else hears, and rules of its own.

    A rule under ``metrics`` replaces the metric's own ``alert`` for this experiment (and
    watches a metric that has none); each metric named must be selected by the experiment.
    """

    enabled: bool = True
    recipients: list[Email] = Field(default_factory=list)
    metrics: dict[Identifier, AlertRule] = Field(default_factory=dict)


def _webhook_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("a webhook is an http:// or https:// URL")
    return value


WebhookUrl = Annotated[str, AfterValidator(_webhook_url)]


class SmtpSettings(StrictModel):
    """The mail server; ``conn_id`` instead names an Airflow SMTP connection to use."""

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    user: str | None = None
    password: SecretStr | None = None
    timeout_seconds: PositiveFloat = 30.0
    conn_id: str | None = None


class AlertSettings(StrictModel):
    """Delivery of alerts (``alerts:`` in ``<home>/settings.yaml``).

    ``recipients`` hear about every alert; ``webhooks`` maps a name (used by the catalog's
    rules) to a URL that gets each alert as an HTTP POST of JSON. A delivery that fails is
    tried again at the next evaluation, ``max_attempts`` times in all. A look is judged only
    once each of its two groups has ``min_units`` users: the always-valid tests are
    large-sample approximations, and the first minutes of an experiment hold a handful of
    users (docs/streaming.md#alerts).
    """

    enabled: bool = True
    email_from: str = DEFAULT_FROM
    recipients: list[Email] = Field(default_factory=list)
    webhooks: dict[Identifier, WebhookUrl] = Field(default_factory=dict)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    max_attempts: PositiveInt = 5
    webhook_timeout_seconds: PositiveFloat = 10.0
    min_units: int = Field(default=200, ge=2)
