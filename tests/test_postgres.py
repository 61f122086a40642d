"""The PostgreSQL store: the same conformance suite, stateful and differential tests."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator

import pytest

from spe_core.errors import StoreError
from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.testing.stateful import differential_machine, queue_machine
from spe_core.testing.store_suite import StoreConformance
from tests.pg import URL, drop_test_schemas, needs_postgres, schema_url

pytestmark = [needs_postgres, pytest.mark.postgres]

_opened: list[Store] = []


def _fresh() -> Store:
    from spe_core.store.postgres import PostgresStore

    store = PostgresStore(schema_url(), max_size=2)
    _opened.append(store)
    return store


@pytest.fixture(scope="module", autouse=True)
def _drop_schemas() -> Iterator[None]:
    yield
    for store in _opened:
        store.close()
    drop_test_schemas()


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    def store(self) -> Store:
        return _fresh()


TestPostgresQueue = queue_machine(_fresh).TestCase
TestMemoryVersusPostgres = differential_machine(_fresh).TestCase


def test_open_store_url_with_schema_and_redacted_password() -> None:
    from spe_core.store.postgres import PostgresStore

    store = open_store(schema_url())
    assert isinstance(store, PostgresStore)
    _opened.append(store)
    with pytest.raises(StoreError, match="plain lower-case identifier"):
        open_store(URL + "?schema=Robert'); DROP TABLE x;--")
    with pytest.raises(StoreError, match="cannot connect") as info:
        open_store("postgresql://spe:s3cret-pw@127.0.0.1:1/none")
    assert "s3cret-pw" not in str(info.value)


def _open_concurrently(url: str, out: mp.Queue[str]) -> None:
    from spe_core.store.postgres import PostgresStore

    store = PostgresStore(url, max_size=1)
    with store.transaction() as tx:
        out.put(str(tx.count.__self__ is tx))
    store.close()


def test_two_processes_migrating_at_once_are_safe() -> None:
    from spe_core.store.postgres import SCHEMA_VERSION, PostgresStore

    url = schema_url()
    ctx = mp.get_context("spawn")
    out: mp.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_open_concurrently, args=(url, out)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = PostgresStore(url)
    _opened.append(store)
    with store.pool.connection() as conn:
        conn.execute(f'SET search_path TO "{store.schema}"'.encode())
        rows = conn.execute("SELECT version FROM spe_schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))


def test_listen_notify_wakes_an_idle_puller() -> None:
    import threading
    from datetime import UTC, datetime

    from spe_core import Engine, Opportunity
    from spe_core.plugins import Plugins
    from spe_core.store.postgres import PostgresStore

    store = _fresh()
    assert isinstance(store, PostgresStore)
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(store.wait_for_work(10)))
    waiter.start()
    import time

    time.sleep(0.5)
    Engine(store, plugins=Plugins.create(entry_points=False)).enqueue(
        [Opportunity("o1", "a", datetime.now(UTC))]
    )
    waiter.join(15)
    assert woke == [True]
    assert store.wait_for_work(0.2) is False


from spe_core.testing.routing_stateful import routing_machine  # noqa: E402

TestRoutingMemoryVersusPostgres = routing_machine(_fresh).TestCase

# === calendar ===
from hypothesis import HealthCheck, settings  # noqa: E402

from spe_core.testing.calendar_stateful import calendar_machine  # noqa: E402

TestPostgresCalendar = calendar_machine(_fresh).TestCase
# each step is a few round trips to the server: fewer, shorter runs than on the embedded stores
TestPostgresCalendar.settings = settings(
    max_examples=40, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck)
)


def test_concurrent_coordinators_never_double_book() -> None:
    """Threads booking overlapping slots for one member through separate connections."""
    from tests.test_calendar_concurrency import race_for_one_slot

    race_for_one_slot(_fresh)
