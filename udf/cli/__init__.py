"""The ``udf`` command line (the contract §5).

Each command group lives in a module of its own and registers itself on :data:`main`
in :func:`_register`. Every command takes ``--home``; a :class:`~udf.errors.UdfError`
becomes a clear error message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import click

from udf import logging as udf_logging
from udf.errors import ConfigError, UdfError
from udf.home import Home


class _Cli(click.Group):
    """A click group that turns the platform's own errors into one clear message and exit 1.

    A config error lists every issue, one per line, under its one-line summary; any other
    error is one line. File-system errors (a home that cannot be created, an unreadable
    file) get the same treatment instead of a traceback.
    """

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
        except UdfError as exc:
            click.echo(f"error: {' '.join(str(exc).split())}", err=True)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1)


home_option = click.option(
    "--home",
    "home",
    type=click.Path(file_okay=False),
    default=None,
    help="Platform home (default: $UDF_HOME, else ./.udf).",
)


def pass_home(func):
    """Give a command its resolved :class:`Home` from its own or the group's ``--home``."""

    @home_option
    @click.pass_context
    def wrapper(ctx: click.Context, home: str | None, **kwargs):
        resolved = Home.resolve(home or ctx.obj.get("home"))
        return ctx.invoke(func, resolved, **kwargs)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@home_option
@click.option(
    "--log-level",
    type=click.Choice(udf_logging.LEVELS, case_sensitive=False),
    default=None,
    help="Log level (default: $UDF_LOG_LEVEL, else WARNING).",
)
@click.pass_context
def main(ctx: click.Context, home: str | None, log_level: str | None) -> None:
    """Experiment metrics: archive, metadata, batch and streaming computation."""
    try:
        udf_logging.configure(log_level)
    except ValueError as exc:  # a bad $UDF_LOG_LEVEL
        raise click.UsageError(str(exc)) from None
    ctx.ensure_object(dict)
    ctx.obj["home"] = home


# Each module defines ``command`` (a click command or group). Add new ones here.
COMMAND_MODULES = (
    "analyze", "backfill", "compute", "config", "data", "db", "experiments", "generate", "ramps",
    "results", "status", "stream",
)


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f"udf.cli.{name}")
        main.add_command(module.command)


_register()
