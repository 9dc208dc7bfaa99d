"""Alerts end to end: the metadata store on every backend, a real SMTP server, a webhook.

The store, its hand-moved clock and the aiosmtpd server are the framework tests' fixtures
(SQLite, PostgreSQL with marker ``postgres``, MariaDB with marker ``mariadb``); the
webhook is a local HTTP server that records each POST.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.framework.conftest import (  # noqa: F401 - fixtures used here
    clock,
    framework_backend,
    framework_url,
    smtp,
    store,
)
from tests.support.webhook_server import WebhookServer
from udf.config.alerts import AlertSettings


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def alert_settings(smtp_port: int, webhook_url: str, **more: object) -> AlertSettings:
    return AlertSettings.model_validate(
        {
            "email_from": "alerts@example.com",
            "webhooks": {"ops": webhook_url},
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout_seconds": 5.0},
            **more,
        }
    )


@pytest.fixture
def settings(smtp, webhook) -> AlertSettings:  # noqa: F811 - the imported fixture
    return alert_settings(smtp.port, webhook.url)
