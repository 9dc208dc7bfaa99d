"""Results stores: the embedded SQL store (the default) and Apache Druid (production).

:data:`STORES` is the one registry: a store's name in ``settings.results.store`` maps to the
module that builds it, imported only when chosen, so the CLI and DAG parsing never load a
store they do not use. Each module has ``from_settings(home, settings, lock=...)``.
See docs/results.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from udf.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from results.stores.base import ResultsStore
    from udf.home import Home
    from udf.settings import Settings

# A lock per name, held while one day's results are rewritten (see stores/druid.py); it
# must exclude every other process and machine that writes the same store.
LockFactory = Callable[[str], AbstractContextManager[object]]

STORES: dict[str, str] = {
    "embedded": "results.stores.embedded",
    "druid": "results.stores.druid",
}


def open_store(home: Home, settings: Settings, *, lock: LockFactory | None = None) -> ResultsStore:
    """The store ``settings.results.store`` names, configured from ``settings``.

    Writers never lose each other's work across processes, whatever the caller passes: the
    embedded store relies on its database's transactions, and the Druid store serialises the
    writers of each day with a :class:`~results.stores.locks.LeaseLock` on the home's
    metadata store. ``lock`` replaces that lock (it must span processes too); stores that
    need none ignore it.
    """
    name = settings.results.store
    if name not in STORES:
        raise ConfigError(
            [ConfigIssue("settings", "results.store", f"unknown results store {name!r}")]
        )
    module = importlib.import_module(STORES[name])
    store: ResultsStore = module.from_settings(home, settings, lock=lock)
    return store
