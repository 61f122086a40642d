"""One engine shared by threads, on every store: nothing released twice, nothing lost;
and ``Engine.close()`` / ``with Engine(...)`` close the store."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spe_core import Engine, FakeClock, Member, Opportunity, Plugins, QueuePolicy, open_store
from spe_core.errors import StoreError
from spe_core.events import OpportunityReleased, OpportunityResolved
from spe_core.store.base import Store
from tests.pg import URL, drop_test_schemas, needs_postgres, schema_url

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)
THREADS = 4
OPPORTUNITIES = 40


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgres", marks=needs_postgres)],
)
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        url = "memory:"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'spe.db'}"
    else:
        url = schema_url()
    store = open_store(url)
    yield store
    store.close()
    if request.param == "postgres" and URL:
        drop_test_schemas()


def test_threads_sharing_one_engine_pull_and_resolve_each_opportunity_once(
    shared_store: Store,
) -> None:
    engine = Engine(
        shared_store,
        clock=FakeClock(T0),
        policy=QueuePolicy(target=OPPORTUNITIES, daily_pull_cap=OPPORTUNITIES),
        plugins=Plugins.create(entry_points=False),
    )
    members = [Member(f"m{i}", f"Member {i}", "inside_sales") for i in range(THREADS)]
    engine.upsert_members(members)
    engine.enqueue(
        Opportunity(f"o{i:03}", "acct", T0 - timedelta(minutes=i)) for i in range(OPPORTUNITIES)
    )
    barrier = threading.Barrier(THREADS)
    resolved: dict[str, list[str]] = {m.id: [] for m in members}
    errors: list[BaseException] = []

    def work(member_id: str) -> None:
        try:
            barrier.wait()
            while True:
                result = engine.pull(member_id, 2)
                if not result.released:
                    return
                for opp in result.released:
                    engine.resolve(opp.id, member_id, "won")
                    resolved[member_id].append(opp.id)
        except BaseException as e:  # reported below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(m.id,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    everyone = [o for ids in resolved.values() for o in ids]
    assert sorted(everyone) == [f"o{i:03}" for i in range(OPPORTUNITIES)]  # none lost, none twice
    events = [r.event for r in engine.store.events()]
    released = Counter(e.opportunity_id for e in events if isinstance(e, OpportunityReleased))
    closed = Counter(e.opportunity_id for e in events if isinstance(e, OpportunityResolved))
    assert set(released.values()) == {1} and set(closed.values()) == {1}
    assert len(released) == OPPORTUNITIES
    assert engine.queue_status().level == 0


def test_close_and_the_context_manager_close_the_store(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'spe.db'}")
    with Engine(store, plugins=Plugins.create(entry_points=False)) as engine:
        assert isinstance(engine, Engine)
        engine.upsert_members([Member("ann", "Ann", "inside_sales")])
    with pytest.raises(StoreError, match="closed"):
        engine.members()
    engine.close()  # twice is fine
    other = Engine(open_store("memory:"), plugins=Plugins.create(entry_points=False))
    other.close()
    with pytest.raises(StoreError, match="closed"):
        other.members()
