"""The framework's store on every backend, and a real SMTP server on 127.0.0.1.

``store`` is a migrated metadata database (SQLite, PostgreSQL with marker ``postgres``,
MariaDB with marker ``mariadb``; server databases get random names and are dropped at the
end of the session) wiped before each test, on the hand-moved clock the unit tests use, so
the unit tests of planning and leases re-run here unchanged (``test_on_servers.py``).
``smtp`` is an aiosmtpd server that keeps every message it receives.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from metadata.models import Base
from metadata.repository import MetadataStore
from tests.integration.metadata.conftest import BACKENDS, Databases
from tests.unit.framework.support import Clock


@pytest.fixture(scope="session", params=BACKENDS)
def framework_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def framework_url(
    framework_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    dbs = Databases(framework_backend, tmp_path_factory.mktemp(f"framework-{framework_backend}"))
    try:
        url = dbs.new()
        MetadataStore(url).close()
        yield url
    finally:
        dbs.drop_all()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 1, 6, 2, tzinfo=UTC))


@pytest.fixture
def store(framework_url: str, clock: Clock) -> Iterator[MetadataStore]:
    engine = sa.create_engine(framework_url)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()
    with MetadataStore(framework_url, clock=clock) as opened:
        yield opened


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpServer:
    """What the server received, parsed with the standard ``email`` package."""

    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    refuse: bool = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(
            envelope.original_content or envelope.content, policy=policy.default
        )
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller

    server = SmtpServer("127.0.0.1", free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
