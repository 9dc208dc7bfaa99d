"""The ``udf`` command line (the contract §5).

Each command group lives in a module of its own and registers itself on :data:`main`
in :func:`_register`. Every command takes ``--home``; a :class:`~udf.errors.UdfError`
becomes a clear error message and a non-zero exit, never a traceback.

Exit codes: 0 success; 1 an error (bad input, bad config, a failed computation); 2 a usage
error (an unknown option, a missing argument, an invalid option value), as click and most
command-line tools do. With ``--format json`` the error is also JSON (on stderr).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from udf import logging as udf_logging
from udf.errors import ConfigError, UdfError
from udf.home import Home

FORMAT_KEY = "udf.format"  # ctx.meta key the --format option sets (udf.cli.output)


class _Cli(click.Group):
    """A click group that turns the platform's own errors into one clear message and exit 1.

    A config error lists every issue, one per line, under its one-line summary; any other
    error is one line. File-system errors (a home that cannot be created, an unreadable
    file) get the same treatment instead of a traceback. Under ``--format json`` every
    error, usage errors included, is one JSON object on stderr instead.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["udf.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if not _wants_json(ctx):
                raise
            _fail(ctx, {"type": "usage", "message": exc.format_message()}, exc.exit_code)
        except ConfigError as exc:
            issues = [{"file": i.file, "field": i.field, "message": i.message} for i in exc.issues]
            summary = str(exc).splitlines()[0].rstrip(":")
            _fail(ctx, {"type": "config", "message": summary, "issues": issues}, 1, f"error: {exc}")
        except UdfError as exc:
            message = " ".join(str(exc).split())
            _fail(ctx, {"type": _kind(exc), "message": message}, 1)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(ctx, {"type": "os", "message": f"{where}{exc.strerror or exc}"}, 1)


def _wants_json(ctx: click.Context) -> bool:
    """Whether the command asked for ``--format json`` (parsed, or still among the raw args)."""
    if FORMAT_KEY in ctx.meta:
        return bool(ctx.meta[FORMAT_KEY] == "json")
    args = ctx.meta.get("udf.argv", [])
    pairs = zip(args, [*args[1:], None], strict=True)
    return "--format=json" in args or any(a == "--format" and b == "json" for a, b in pairs)


def _kind(exc: UdfError) -> str:
    """``InputError`` -> ``input``: the error's class, for scripts to tell errors apart."""
    name = type(exc).__name__.removesuffix("Error")
    return name.lower() or "udf"


def _fail(ctx: click.Context, error: dict[str, Any], code: int, text: str | None = None) -> None:
    if _wants_json(ctx):
        click.echo(json.dumps({"error": error, "exit_code": code}), err=True)
    else:
        click.echo(text or f"error: {error['message']}", err=True)
    sys.exit(code)


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
    "analyze",
    "archive",
    "backfill",
    "compute",
    "config",
    "data",
    "db",
    "experiments",
    "generate",
    "power",
    "ramps",
    "results",
    "status",
    "stream",
    "validate",
    "flink",
)


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f"udf.cli.{name}")
        main.add_command(module.command)


_register()
