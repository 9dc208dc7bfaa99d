"""Issue 12's alert acceptance, from the real pipeline: a 20% drop alerts once, A/A never;
and a broken 40/60 split raises the real-time health alert once.

``udf stream replay --rate`` feeds a small workload (:mod:`tests.support.alert_workload`)
like live traffic, so Flink's results sink writes the experiments' rows many times as they
grow, and judges each write as a look. The mail goes to a real SMTP server (aiosmtpd) and
the webhook to a local HTTP server, both in this process; the pipeline runs in its own.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from streaming.alerts.health import REALTIME_SEGMENT
from tests.support.alert_workload import AA, DROP, OWNER, SRM, catalog, write_workload
from tests.support.streaming import finish, start_stream, udf
from udf.home import Home

pytestmark = [pytest.mark.flink, pytest.mark.slow]

RATE = 450  # records/s: the ~22,500 records take ~50 s, a look every 0.5-1 s per experiment
USERS = 1000  # per group


def _prepare(root: Path, smtp_port: int, webhook_url: str) -> tuple[Home, dict[str, int]]:
    home = Home.resolve(root / "home").ensure()
    counts = write_workload(root / "workload", users=USERS)
    h = ("--home", str(home.root))
    for topic in ("activations", "events"):
        udf(*h, "data", "import", "--topic", topic, str(root / "workload" / f"{topic}.jsonl"))
    udf(*h, "ramps", "import", str(root / "workload" / "ramps.csv"))
    settings = {
        "window_days": 3,
        "stream": {
            "checkpoint_interval_seconds": 5, "flush_interval_seconds": 0.5,
            "restart_attempts": 0, "mini_batch_latency_ms": 250, "monitor_seconds": 0.5,
        },
        "alerts": {
            "email_from": "alerts@example.com",
            "webhooks": {"ops": webhook_url},
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "timeout_seconds": 5.0},
        },
    }  # fmt: skip
    (home.root / "settings.yaml").write_text(yaml.safe_dump(settings))
    (root / "catalog").mkdir()
    (root / "catalog" / "catalog.yaml").write_text(yaml.safe_dump(catalog(), sort_keys=False))
    udf(*h, "config", "load", str(root / "catalog"))
    return home, counts


def test_a_20_percent_drop_alerts_once_and_an_aa_never_over_20_looks(
    tmp_path: Path, smtp, webhook
) -> None:
    from metadata.repository import MetadataStore

    home, counts = _prepare(tmp_path, smtp.port, webhook.url)
    started = time.monotonic()
    out = finish(start_stream(home, "replay", "--rate", str(RATE)), home, "replay", timeout=600)
    elapsed = time.monotonic() - started
    records = counts["events"] + counts["activations"]
    assert elapsed >= records / RATE  # paced: no faster than the rate
    assert "draining" in out

    with MetadataStore.for_home(home) as store:
        every = store.alert_states()
        sent = store.notifications()
    states = {(s.key.experiment, s.key.group, s.key.metric): s for s in every if not s.key.segment}
    health = {s.key.experiment: s for s in every if s.key.segment == REALTIME_SEGMENT}
    drop = states[(DROP, "treatment", "clicks")]
    aa = states[(AA, "treatment", "clicks")]
    # many looks at each comparison, each on more users than the one before (cumulative rows)
    assert aa.looks >= 20 and drop.looks >= 20, (aa, drop)
    assert aa.found.units == drop.found.units == 2 * USERS  # every user of both groups, at the end
    assert (drop.state, drop.changes) == ("alerting", 1), drop
    assert (aa.state, aa.changes) == ("ok", 0), aa
    assert aa.found.moved == "" and drop.found.moved == "decrease"
    assert -0.3 < drop.found.lift_rel < -0.1
    # the broken split: its clicks per user are the same in both groups (no metric alert),
    # and its real-time health alerts once; the others' never do
    srm = states[(SRM, "treatment", "clicks")]
    assert (srm.state, srm.changes) == ("ok", 0), srm
    assert (health[SRM].state, health[SRM].changes) == ("alerting", 1), health[SRM]
    for name in (DROP, AA):
        assert (health[name].state, health[name].changes) == ("ok", 0), health[name]
        assert health[name].looks >= 20 and health[name].found.p_value > 0.001
    assert health[SRM].found.units == 2 * USERS and health[SRM].found.p_value < 1e-6

    # exactly one email and one webhook call about the drop, and one of each about the
    # split; none about the A/A
    mails = {m.message["Subject"].split(":")[0]: m for m in smtp.received}
    assert len(smtp.received) == 2 and set(mails) == {
        f"[udf] ALERT {DROP}/treatment",
        f"[udf] REAL-TIME HEALTH {SRM}",
    }
    mail = mails[f"[udf] ALERT {DROP}/treatment"]
    assert mail.rcpt_tos == [OWNER] and mail.mail_from == "alerts@example.com"
    assert mail.message["Subject"].startswith(f"[udf] ALERT {DROP}/treatment: clicks down ")
    assert mails[f"[udf] REAL-TIME HEALTH {SRM}"].message["Subject"].endswith(": srm")
    posts = {p.json()["alert"]["experiment"]: p.json()["alert"] for p in webhook.posts}
    assert len(webhook.posts) == 2 and set(posts) == {DROP, SRM}
    alert = posts[DROP]
    assert (alert["experiment"], alert["group"], alert["metric"], alert["state"]) == (
        DROP, "treatment", "clicks", "alerting",
    )  # fmt: skip
    assert alert["method"] == "msprt" and alert["units"] >= 2 * 200
    assert (posts[SRM]["method"], posts[SRM]["state"]) == ("always_valid_srm", "alerting")
    assert [n.state for n in sent] == ["sent"] * 4  # the four messages, recorded as sent

    # the stream rows carry the always-valid columns the alert was decided on
    from results.stores import open_store
    from udf.settings import load_settings

    with open_store(home, load_settings(home, {})) as rows_store:
        rows = rows_store.read(source="stream", metric_type="aggregated")
    [treated] = [
        r for r in rows if (r.experiment, r.group, r.metric) == (DROP, "treatment", "clicks")
    ]
    assert treated.seq_decision == "treatment_lower" and treated.seq_ci_high < 0
    [placebo] = [
        r for r in rows if (r.experiment, r.group, r.metric) == (AA, "treatment", "clicks")
    ]
    assert placebo.seq_decision == "continue"

    # exactly once: a second (unpaced) replay rewrites the same rows, never adds to them,
    # and its looks are no news: no change of state, no message
    before = {r.key(): r for r in rows}
    finish(start_stream(home, "replay"), home, "replay", timeout=600)
    with open_store(home, load_settings(home, {})) as rows_store:
        again = {r.key(): r for r in rows_store.read(source="stream", metric_type="aggregated")}
    assert again.keys() == before.keys()
    for key, row in again.items():
        assert replace(row, computed_at=0) == replace(before[key], computed_at=0), key
    assert len(smtp.received) == 2 and len(webhook.posts) == 2
    with MetadataStore.for_home(home) as store:
        assert sorted(s.changes for s in store.alert_states()) == [0, 0, 0, 0, 1, 1]
