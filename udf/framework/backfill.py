"""Ask an Airflow 3 server to backfill a pipeline, through its public REST API.

Airflow's backfill creates one DAG run per logical date in the range, each of which runs
the same plan as a scheduled run (readiness, leases, batches), so a backfill never
computes differently from a normal day. The request carries the run conf
(:class:`~udf.framework.plan.RunConf`): the metrics and experiment to restrict to, and
``force`` with the request time, so days already done are recomputed once.

Authentication is Airflow 3's: ``POST /auth/token`` with a user name and password returns
a JWT (the simple auth manager and the FAB auth manager both serve it; without a user,
``GET /auth/token`` works when ``simple_auth_manager_all_admins`` is on); the backfill is
``POST /api/v2/backfills`` with that bearer token. Only the standard library is used.

A paused DAG's runs never start, backfill runs included: Airflow accepts the backfill and
its runs wait in the queue. :func:`ensure_unpaused` checks first (``GET /api/v2/dags/{id}``)
and refuses, or unpauses the DAG (``PATCH``) when asked to.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date
from typing import Any

from udf import times
from udf.errors import InputError, UdfError

TIMEOUT_SECONDS = 30.0
# The longest range one backfill may cover: a longer one is nearly always a typo in a date
# (a year runs 366 metric-days per metric through the scheduler); split real needs.
MAX_BACKFILL_DAYS = 366


def check_range(first: date, last: date) -> None:
    """Refuse a backfill range that is backwards, ends in the future or is unreasonably long."""
    if last < first:
        raise InputError(f"--to {last} is before --from {first}")
    today = times.today()
    if last > today:
        raise InputError(
            f"--to {last} is in the future (today is {today} UTC): a day is computed once its "
            f"data is in; backfill through {today} at most"
        )
    days = (last - first).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise InputError(
            f"--from {first} --to {last} covers {days:,} days; one backfill covers at most "
            f"{MAX_BACKFILL_DAYS} (check the dates, or split the range)"
        )


class AirflowApiError(UdfError):
    """The Airflow server refused or failed a request (the message carries its detail)."""


class DagPausedError(UdfError):
    """The DAG to backfill is paused: its runs would wait without ever starting."""


@dataclass(frozen=True)
class BackfillRequest:
    dag_id: str
    from_date: date
    to_date: date
    dag_run_conf: dict[str, Any]
    max_active_runs: int = 1
    reprocess_behavior: str = "completed"

    def body(self) -> dict[str, Any]:
        """The request body; the range covers every logical date from ``from_date`` 00:00 to
        the end of ``to_date``.

        A run plans the last whole day before its data interval ends, so a daily run with
        logical date D plans D, and with a sub-daily schedule the run starting at D 20:00
        (ending at midnight) is the one that plans D: ending the range at 23:59:59 makes the
        last day planned for both. (With a sub-daily schedule the first runs of ``from_date``
        end on that day, so they would plan the day before: the run conf's ``from_date``
        and ``to_date`` make them plan nothing instead.)
        """
        return {
            "dag_id": self.dag_id,
            "from_date": f"{self.from_date.isoformat()}T00:00:00Z",
            "to_date": f"{self.to_date.isoformat()}T23:59:59Z",
            "reprocess_behavior": self.reprocess_behavior,
            "max_active_runs": self.max_active_runs,
            "dag_run_conf": self.dag_run_conf,
        }


def get_token(
    server: str, user: str | None, password: str | None, *, timeout: float = TIMEOUT_SECONDS
) -> str:
    """A JWT for the public API: from credentials, or credential-free when the server allows it."""
    if user:
        payload = {"username": user, "password": password or ""}
        answer = _call("POST", f"{_base(server)}/auth/token", payload, None, timeout)
    else:
        answer = _call("GET", f"{_base(server)}/auth/token", None, None, timeout)
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise AirflowApiError(f"{server}/auth/token returned no access_token")
    return token


def ensure_unpaused(
    server: str, dag_id: str, token: str, *, unpause: bool, timeout: float = TIMEOUT_SECONDS
) -> bool:
    """Refuse a paused DAG, or unpause it when ``unpause``; True when it was unpaused."""
    url = f"{_base(server)}/api/v2/dags/{dag_id}"
    dag = _call("GET", url, None, token, timeout)
    if not isinstance(dag, dict) or not dag.get("is_paused"):
        return False
    if not unpause:
        raise DagPausedError(
            f"{dag_id} is paused on {server}, so the backfill's runs would wait without ever "
            f"starting: run again with --unpause to unpause it first (or `airflow dags "
            f"unpause {dag_id}`)"
        )
    _call("PATCH", url, {"is_paused": False}, token, timeout)
    return True


def request_backfill(
    server: str,
    request: BackfillRequest,
    *,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Create the backfill; returns Airflow's answer (the backfill's id, dates, conf)."""
    token = token or get_token(server, user, password, timeout=timeout)
    answer = _call("POST", f"{_base(server)}/api/v2/backfills", request.body(), token, timeout)
    if not isinstance(answer, dict):
        raise AirflowApiError(f"{server}/api/v2/backfills returned {answer!r}")
    return answer


def _base(server: str) -> str:
    return server.rstrip("/")


def _call(
    method: str, url: str, payload: dict[str, Any] | None, token: str | None, timeout: float
) -> Any:
    headers = {"Accept": "application/json"}
    data = None
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise AirflowApiError(f"{method} {url}: HTTP {exc.code}: {_detail(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AirflowApiError(f"{method} {url}: cannot reach the server ({reason})") from None
    try:
        return json.loads(body) if body else {}
    except ValueError:
        raise AirflowApiError(f"{method} {url}: the answer is not JSON") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode("utf-8", "replace")
    except OSError:
        return exc.reason or ""
    try:
        detail = json.loads(raw).get("detail", raw)
    except (ValueError, AttributeError):
        detail = raw
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return " ".join(text.split())[:500] or str(exc.reason)
