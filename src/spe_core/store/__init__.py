"""Persistence: one store interface, three engines.

``open_store("memory:")`` for tests and embedding, ``open_store("sqlite:///path.db")``
for the embedded default, ``open_store("postgresql://...")`` for many workers
on many hosts (extra ``[postgres]``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

from spe_core.errors import StoreError
from spe_core.store.base import RANKED_STATUSES, Store, Transaction, seconds_param

__all__ = ["RANKED_STATUSES", "Store", "Transaction", "open_store"]


def open_store(url: str) -> Store:
    """Open the store named by ``url``.

    - ``memory:`` — in this process's memory;
    - ``sqlite:///relative/or/absolute/path.db`` (``sqlite:////abs/path.db`` also works);
    - ``postgresql://user@host:port/dbname`` (needs ``spe-sdk[postgres]``).
    """
    text = url.strip()
    if text in ("memory:", "memory://"):
        from spe_core.store.memory import MemoryStore

        return MemoryStore()
    if text.startswith("sqlite://"):
        from spe_core.store.sqlite import DEFAULT_BUSY_TIMEOUT, SQLiteStore

        path, _, query = text[len("sqlite://") :].partition("?")
        if path.startswith("/"):
            path = path[1:]
        if not path:
            raise StoreError(
                f"store URL {url!r} names no file.",
                "use sqlite:///spe.db (relative) or sqlite:////abs/spe.db.",
            )
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(options) - {"busy_timeout"})
        if unknown:
            raise StoreError(
                f"store URL {url!r} has unknown parameter(s) {', '.join(unknown)}.",
                "the SQLite store accepts ?busy_timeout=SECONDS only.",
            )
        timeout = seconds_param(options.get("busy_timeout"), "busy_timeout", DEFAULT_BUSY_TIMEOUT)
        return SQLiteStore(unquote(path), timeout=timeout)
    if text.startswith(("postgresql://", "postgres://")):
        try:
            from spe_core.store.postgres import (  # type: ignore[import-not-found,unused-ignore]
                PostgresStore,
            )
        except ImportError as exc:
            raise StoreError(
                f"the PostgreSQL store is not available ({exc}).",
                "install it with: pip install 'spe-sdk[postgres]'.",
            ) from exc
        store: Store = PostgresStore(text)
        return store
    scheme = text.split(":", 1)[0] if ":" in text else text
    raise StoreError(
        f"unknown store URL scheme {scheme!r} in {url!r}.",
        "use memory:, sqlite:///path.db or postgresql://user@host/db.",
    )
