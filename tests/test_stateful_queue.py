"""Stateful property tests of the pull queue on every embedded store."""

from __future__ import annotations

import tempfile
from pathlib import Path

from spe_core.store.memory import MemoryStore
from spe_core.store.sqlite import SQLiteStore
from spe_core.testing.stateful import differential_machine, queue_machine

_TMP = Path(tempfile.mkdtemp(prefix="spe-stateful-"))
_counter = iter(range(10**9))


def _sqlite() -> SQLiteStore:
    return SQLiteStore(_TMP / f"machine-{next(_counter)}.db")


TestMemoryQueue = queue_machine(MemoryStore).TestCase
TestSQLiteQueue = queue_machine(_sqlite).TestCase
TestMemoryVersusSQLite = differential_machine(_sqlite).TestCase

from spe_core.testing.routing_stateful import routing_machine  # noqa: E402

TestRoutingMemoryVersusSQLite = routing_machine(_sqlite).TestCase
