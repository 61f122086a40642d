"""PostgreSQL test helpers: a fresh schema per store, dropped afterwards."""

from __future__ import annotations

import os
import uuid

import pytest

ENV = "SPE_TEST_POSTGRES_URL"
URL = os.environ.get(ENV, "")

needs_postgres = pytest.mark.skipif(
    not URL,
    reason=f"set {ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test) to run the "
    "PostgreSQL tests",
)


def schema_url(prefix: str = "spe_test", *, durable: bool = False) -> str:
    """The test server's URL with a new, unique schema.

    Unless ``durable``, commits do not wait for the WAL flush (tests need no
    durability, and it makes the stateful machines several times faster).
    """
    sep = "&" if "?" in URL else "?"
    url = f"{URL}{sep}schema={prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    return url if durable else url + "&options=-csynchronous_commit%3Doff"


def drop_test_schemas() -> None:
    """Drop every schema this test process created."""
    import psycopg

    prefix = f"spe_test_{os.getpid()}_"
    with psycopg.connect(URL.split("?")[0], autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)
            )
        ]
        for name in names:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'.encode())
