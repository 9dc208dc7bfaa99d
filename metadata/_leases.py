"""Leases (the framework's list of work in progress) and the notifications ledger.

A lease says "``holder`` is computing ``key`` until ``expires_at``"; heartbeats extend it and
an expired lease may be taken over, so a crashed worker never blocks a metric for good.
Times come from the store's clock (the worker's, injectable for tests), read once per call.
Notifications are recorded before they are sent, so a failed delivery is retried, not lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from metadata._base import StoreBase
from metadata.models import NOTIFICATION_STATES, Lease, Notification
from metadata.records import LeaseInfo, NotificationInfo
from udf.errors import MetadataError


class LeasesMixin(StoreBase):
    def acquire_lease(self, key: str, holder: str, ttl: timedelta | float) -> bool:
        """Take ``key`` for ``holder`` until now + ``ttl``; False while someone else holds it.

        Re-acquiring one's own live lease succeeds and extends it. Atomic across processes:
        an expired row is taken by a conditional UPDATE (the database serialises updaters of
        one row), a missing row by an INSERT that the unique key lets only one caller commit.
        Expiry compares this worker's clock with the ones that wrote the lease, so workers
        need synchronised clocks (NTP); see docs/metadata.md.
        """
        now = self._clock()  # once: the acquisition time and the expiry must agree
        expires = now + _ttl(ttl)
        with self._tx() as s:
            taken = s.execute(
                update(Lease)
                .where(Lease.key == key, or_(Lease.expires_at <= now, Lease.holder == holder))
                .values(holder=holder, acquired_at=now, heartbeat_at=now, expires_at=expires)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return True
        try:
            with self._tx() as s:
                s.add(
                    Lease(
                        key=key,
                        holder=holder,
                        acquired_at=now,
                        heartbeat_at=now,
                        expires_at=expires,
                    )
                )
                s.flush()
        except IntegrityError:
            return False
        return True

    def heartbeat(self, key: str, holder: str, ttl: timedelta | float) -> bool:
        """Extend ``holder``'s live lease; False if it expired or belongs to someone else."""
        now = self._clock()
        with self._tx() as s:
            result = s.execute(
                update(Lease)
                .where(Lease.key == key, Lease.holder == holder, Lease.expires_at > now)
                .values(heartbeat_at=now, expires_at=now + _ttl(ttl))
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1  # type: ignore[attr-defined]

    def release(self, key: str, holder: str) -> bool:
        """Give the lease up; False if ``holder`` did not hold it."""
        with self._tx() as s:
            result = s.execute(
                delete(Lease)
                .where(Lease.key == key, Lease.holder == holder)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1  # type: ignore[attr-defined]

    def leases(self, include_expired: bool = False) -> list[LeaseInfo]:
        query = select(Lease).order_by(Lease.key)
        if not include_expired:
            query = query.where(Lease.expires_at > self._clock())
        with self._tx() as s:
            return [_lease_info(x) for x in s.scalars(query)]

    def expire_leases(self) -> list[LeaseInfo]:
        """Delete the leases that have expired and return them (their work was abandoned)."""
        now = self._clock()
        with self._tx() as s:
            expired = list(
                s.scalars(select(Lease).where(Lease.expires_at <= now).with_for_update())
            )
            for lease in expired:
                s.delete(lease)
            return [_lease_info(x) for x in expired]

    # -- notifications -------------------------------------------------------------------------

    def record_notification(
        self, recipient: str, kind: str, subject: str, body: str = "", run_ids: Iterable[int] = ()
    ) -> int:
        """Queue a notification as ``pending``; returns its id for :meth:`mark_notification`."""
        with self._tx() as s:
            row = Notification(
                recipient=recipient, kind=kind, subject=subject, body=body,
                run_ids=sorted(set(run_ids)), state="pending", attempts=0, created_at=self._clock(),
            )  # fmt: skip
            s.add(row)
            s.flush()
            return row.id

    def mark_notification(self, id: int, state: str, error: str | None = None) -> NotificationInfo:
        """Record a delivery attempt: ``sent`` (with its time) or ``failed`` (with the error)."""
        if state not in NOTIFICATION_STATES:
            raise MetadataError(f"unknown notification state {state!r}")
        with self._tx() as s:
            row = s.get(Notification, id, with_for_update=True)
            if row is None:
                raise MetadataError(f"no notification with id {id}")
            row.state = state
            if state != "pending":
                row.attempts += 1
            if state == "sent":
                row.sent_at = self._clock()
            if error is not None or state == "failed":
                row.last_error = error
            s.flush()
            return _notification_info(row)

    def notification(self, id: int) -> NotificationInfo | None:
        """One notification as it is now (None if there is none with this id)."""
        with self._tx() as s:
            row = s.get(Notification, id)
            return None if row is None else _notification_info(row)

    def notifications(
        self, *, state: str | None = None, recipient: str | None = None, kind: str | None = None
    ) -> list[NotificationInfo]:
        query = select(Notification).order_by(Notification.id)
        for column, value in (
            (Notification.state, state),
            (Notification.recipient, recipient),
            (Notification.kind, kind),
        ):
            if value is not None:
                query = query.where(column == value)
        with self._tx() as s:
            return [_notification_info(n) for n in s.scalars(query)]


def _ttl(ttl: timedelta | float) -> timedelta:
    delta = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
    if delta <= timedelta(0):
        raise MetadataError(f"a lease needs a positive ttl, not {delta}")
    return delta


def _lease_info(x: Lease) -> LeaseInfo:
    return LeaseInfo(x.key, x.holder, x.acquired_at, x.heartbeat_at, x.expires_at)


def _notification_info(n: Notification) -> NotificationInfo:
    return NotificationInfo(
        n.id, n.recipient, n.kind, n.subject, n.body, tuple(n.run_ids), n.state, n.attempts,
        n.last_error, n.created_at, n.sent_at, n.alert_event_id,
    )  # fmt: skip
