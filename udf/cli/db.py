"""``udf db``: the metadata database's schema (Alembic migrations shipped with udf)."""

from __future__ import annotations

import sys

import click

from udf.cli import pass_home
from udf.home import Home


@click.group(name="db")
def command() -> None:
    """The metadata database: migrate, downgrade, show the revision."""


def _url(home: Home) -> str:
    home.ensure()
    return home.metadata_url


@command.command(name="migrate")
@pass_home
def migrate(home: Home) -> None:
    """Upgrade the metadata database to the newest schema (safe to repeat)."""
    from metadata import db

    before = db.current_revision(_url(home))
    after = db.migrate(_url(home))
    if before == after:
        click.echo(f"already at revision {after} (head)")
    else:
        click.echo(f"migrated from {before or 'an empty database'} to revision {after} (head)")


@command.command(name="downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@pass_home
def downgrade(home: Home, revision: str, yes: bool) -> None:
    """Downgrade the metadata database to REVISION (``base`` removes every table).

    A downgrade drops what newer revisions added, data included, so it asks first; without
    a terminal to ask on, it needs --yes.
    """
    from alembic.util import CommandError

    from metadata import db
    from metadata.db import safe_url
    from udf.errors import InputError

    what = (
        "drops every table and all metadata"
        if revision == "base"
        else "drops what later revisions added"
    )
    question = f"Downgrading {safe_url(_url(home))} to {revision} {what}. Continue?"
    if not yes:
        if not _interactive():
            raise InputError(f"downgrading to {revision} {what}: pass --yes to confirm")
        click.confirm(question, abort=True, err=True)
    try:
        after = db.downgrade(_url(home), revision)
    except CommandError as exc:
        raise InputError(f"cannot downgrade to {revision!r}: {exc}") from exc
    click.echo(f"downgraded to {after or 'base (no tables)'}")


def _interactive() -> bool:
    return sys.stdin.isatty()


@command.command(name="current")
@pass_home
def current(home: Home) -> None:
    """Show the metadata database's revision and whether it is the newest."""
    from metadata import db

    revision = db.current_revision(_url(home))
    head = db.head_revision()
    if revision is None:
        click.echo(f"empty database (newest revision: {head}); run 'udf db migrate'")
    elif revision == head:
        click.echo(f"{revision} (head)")
    else:
        click.echo(f"{revision} (behind: newest is {head}; run 'udf db migrate')")
