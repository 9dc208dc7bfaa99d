"""Real-time alerts: a treatment moving a watched metric significantly, told once per change.

The streaming sink (and batch, if it likes) calls :func:`evaluate_alerts` with its result
rows. :mod:`.rules` resolves which (experiment, metric) pairs are watched and who hears,
:mod:`.decision` judges each look with an always-valid test, the metadata store records
each comparison's state (``ok``/``alerting``) and queues the messages of a change in the
same transaction, :mod:`.messages` writes them (email, Slack-compatible webhook JSON) and
:mod:`.delivery` sends them with bounded retries. docs/streaming.md#alerts explains it all.
"""

from __future__ import annotations

from streaming.alerts.evaluate import AlertReport, evaluate_alerts

__all__ = ["AlertReport", "evaluate_alerts"]
