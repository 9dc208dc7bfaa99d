"""``udf power``: the minimum detectable effect of a planned test, or the days it needs.

The per-user standard deviation, the control mean and the users exposed per day come from
the options, or from the stored batch results of a running experiment (``--experiment``
and ``--metric``: its control row of the latest date, overall segment). Give ``--days`` for
the MDE after that many days, or ``--effect``/``--relative-effect`` for the days needed to
detect it. The numbers are those of statsmodels' ``NormalIndPower``/``TTestIndPower``
(:mod:`stats.power`; docs/statistics.md "Power and MDE").
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import click

from udf.cli import pass_home
from udf.cli.output import emit, format_option
from udf.errors import InputError
from udf.home import Home

FIELDS = ("sigma", "control_mean", "users_per_day", "control_share", "alpha", "power", "test",
          "days", "n_control", "n_treatment", "mde", "mde_rel")  # fmt: skip


def parse_allocation(text: str) -> tuple[float, float]:
    """``"50/50"`` or ``"45/55"`` (control first) -> (control share, treatment/control ratio)."""
    try:
        control, treatment = (float(part) for part in text.split("/"))
    except ValueError:
        raise InputError(
            f"--allocation must be CONTROL/TREATMENT like 50/50, got {text!r}"
        ) from None
    if not (control > 0 and treatment > 0 and math.isfinite(control + treatment)):
        raise InputError(f"--allocation shares must be positive, got {text!r}")
    return control / (control + treatment), treatment / control


def observed(
    home: Home, experiment: str, metric: str, metric_type: str, day: date | None
) -> dict[str, float]:
    """Sigma, control mean, users per day and control share from the stored batch results."""
    from metadata.repository import MetadataStore
    from results.stores import open_store
    from udf.settings import load_settings

    with MetadataStore.for_home(home) as meta:
        controls = {g.name for e in meta.experiments() if e.name == experiment
                    for g in e.groups if g.is_control}  # fmt: skip
    with open_store(home, load_settings(home)) as store:
        rows = store.read(source="batch", metric_type=metric_type, experiments=[experiment],
                          metrics=[metric], date_to=day)  # fmt: skip
    rows = [r for r in rows if r.segment == "" and r.day_in == 0]
    if not rows:
        raise InputError(f"no stored batch {metric_type} results of {metric!r} for {experiment!r}")
    last = max((r.date, r.period_start) for r in rows)
    rows = [r for r in rows if (r.date, r.period_start) == last]
    control = [r for r in rows if r.group in controls]
    treated = [r for r in rows if r.group not in controls]
    if len(control) != 1 or not treated:
        raise InputError(f"{experiment!r} {last[0]}: need one control and a treatment row")
    c = control[0]
    if c.n < 2:
        raise InputError(f"{experiment!r} {last[0]}: the control group has fewer than 2 users")
    variance = (c.sum_sq - c.sum * c.sum / c.n) / (c.n - 1)
    exposed = sum(r.exposed for r in rows)
    look = max(r.look for r in rows)
    return {
        "sigma": math.sqrt(max(variance, 0.0)),
        "control_mean": c.sum / c.n,
        "users_per_day": exposed / look,
        "control_share": c.exposed / exposed,
    }


def report(
    sigma: float, control_mean: float | None, users_per_day: float, control_share: float,
    alpha: float, power: float, test: str, days: float | None, effect: float | None,
) -> dict[str, Any]:  # fmt: skip
    """The MDE after ``days`` days, or (given ``effect``) the days needed to detect it."""
    from stats.power import mde, sample_size

    ratio = (1.0 - control_share) / control_share
    if effect is not None:
        n_control = sample_size(effect, sigma, ratio, alpha, power, test)  # type: ignore[arg-type]
        days = n_control / (users_per_day * control_share)
    assert days is not None
    n_control = users_per_day * days * control_share
    delta = mde(sigma, n_control, ratio, alpha, power, test)  # type: ignore[arg-type]
    rel = delta / abs(control_mean) if control_mean else None
    return {
        "sigma": sigma, "control_mean": control_mean, "users_per_day": users_per_day,
        "control_share": control_share, "alpha": alpha, "power": power, "test": test,
        "days": days, "n_control": n_control, "n_treatment": n_control * ratio, "mde": delta,
        "mde_rel": rel,
    }  # fmt: skip


@click.command(name="power")
@click.option("--experiment", default=None, help="Take sigma, mean and traffic from its results.")
@click.option("--metric", default=None, help="The metric of --experiment's results.")
@click.option("--metric-type", default="aggregated", show_default=True)
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Results up to this date (default: the latest).")  # fmt: skip
@click.option("--sigma", type=float, default=None, help="Per-user standard deviation.")
@click.option(
    "--mean",
    "control_mean",
    type=float,
    default=None,
    help="Control mean (for --relative-effect and mde_rel).",
)
@click.option(
    "--users-per-day", type=float, default=None, help="Users exposed per day, all groups."
)
@click.option(
    "--allocation",
    default=None,
    help="CONTROL/TREATMENT shares, e.g. 50/50 (default: observed, else 50/50).",
)
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--power", "power_", type=float, default=0.8, show_default=True)
@click.option("--test", type=click.Choice(["z", "t"]), default="z", show_default=True)
@click.option("--days", type=float, default=None, help="Planned duration: give the MDE after it.")
@click.option("--effect", type=float, default=None, help="Absolute effect: give the days needed.")
@click.option(
    "--relative-effect",
    type=float,
    default=None,
    help="Effect relative to the control mean: the days needed.",
)
@format_option
@pass_home
def command(
    home: Home, experiment: str | None, metric: str | None, metric_type: str,
    day: Any, sigma: float | None, control_mean: float | None, users_per_day: float | None,
    allocation: str | None, alpha: float, power_: float, test: str, days: float | None,
    effect: float | None, relative_effect: float | None, fmt: str,
) -> None:  # fmt: skip
    """Minimum detectable effect after --days, or the days needed for --effect."""
    if sum(x is not None for x in (days, effect, relative_effect)) != 1:
        raise InputError("give exactly one of --days, --effect or --relative-effect")
    if (experiment is None) != (metric is None):
        raise InputError("--experiment and --metric go together")
    seen: dict[str, float] = {}
    if experiment is not None and metric is not None:
        seen = observed(home, experiment, metric, metric_type, day.date() if day else None)
    sigma = sigma if sigma is not None else seen.get("sigma")
    control_mean = control_mean if control_mean is not None else seen.get("control_mean")
    users_per_day = users_per_day if users_per_day is not None else seen.get("users_per_day")
    share = parse_allocation(allocation)[0] if allocation else seen.get("control_share", 0.5)
    if sigma is None or users_per_day is None:
        raise InputError("give --sigma and --users-per-day, or --experiment and --metric")
    if not (sigma > 0 and users_per_day > 0):
        raise InputError("sigma and users per day must be positive")
    if days is not None and days <= 0:
        raise InputError("--days must be positive")
    if relative_effect is not None:
        if not control_mean:
            raise InputError("--relative-effect needs a non-zero control mean (--mean)")
        effect = relative_effect * abs(control_mean)
    if effect is not None and effect == 0:
        raise InputError("the effect must not be 0")
    try:
        row = report(sigma, control_mean, users_per_day, share, alpha, power_, test, days, effect)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    title = f"Power ({test}-test, two-sided, alpha={alpha:g}, power={power_:g})"
    if fmt == "json":
        emit([row], fmt)
    else:
        emit([row], fmt, title=title, columns=FIELDS)
