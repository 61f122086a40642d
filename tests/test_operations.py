"""Operation ids: a call retried with the caller's id returns its first result, never acts
twice; every event is stored with its unit's id. On memory, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spe_core import Engine, Member, Opportunity, OpportunityStatus, QueuePolicy
from spe_core.errors import InvalidValue
from spe_core.events import OpportunityReleased, OpportunityResolved, replay
from spe_core.operations import RETENTION, check_operation_id, new_operation_id
from spe_core.plugins import Plugins
from spe_core.store import open_store
from spe_core.store.base import Store
from spe_core.testing import FakeClock
from tests.pg import URL as POSTGRES_URL
from tests.pg import drop_test_schemas, schema_url

POLICY = QueuePolicy(target=1000, daily_pull_cap=None, default_wip_limit=50)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("set SPE_TEST_POSTGRES_URL to run the PostgreSQL tests")
        url = schema_url()
    else:
        url = "memory:" if request.param == "memory" else f"sqlite:///{tmp_path / 'spe.db'}"
    s = open_store(url)
    yield s
    s.close()
    if request.param == "postgresql":
        drop_test_schemas()


def _engine(store: Store, clock: FakeClock | None = None) -> Engine:
    return Engine(
        store, clock=clock or FakeClock(), policy=POLICY, plugins=Plugins.create(entry_points=False)
    )


def _seed(engine: Engine, n: int = 6) -> None:
    engine.upsert_members(
        [Member("ana", "Ana", "inside_sales"), Member("bo", "Bo", "inside_sales")]
    )
    engine.enqueue(Opportunity(f"o{i}", f"a{i}", engine.clock.now()) for i in range(n))


def _released(store: Store) -> list[str]:
    return [
        r.event.opportunity_id for r in store.events() if isinstance(r.event, OpportunityReleased)
    ]


def test_a_retried_pull_returns_its_first_result_and_releases_nothing_more(
    any_store: Store,
) -> None:
    engine = _engine(any_store)
    _seed(engine)
    first = engine.pull("ana", 2, operation_id="req-1")
    again = engine.pull("ana", 2, operation_id="req-1")
    assert again == first and len(first.released) == 2
    assert _released(any_store) == [o.id for o in first.released]
    other = engine.pull("ana", 2, operation_id="req-2")  # a new id is a new call
    assert {o.id for o in other.released}.isdisjoint(o.id for o in first.released)


def test_a_retried_resolve_returns_its_first_result_not_wrong_state(any_store: Store) -> None:
    engine = _engine(any_store)
    _seed(engine)
    opp = engine.pull("ana").released[0]
    done = engine.resolve(opp.id, "ana", "won", operation_id="r-1")
    assert engine.resolve(opp.id, "ana", "won", operation_id="r-1") == done
    resolved = [r for r in any_store.events() if isinstance(r.event, OpportunityResolved)]
    assert len(resolved) == 1
    back = engine.pull("bo").released[0]
    given_back = engine.give_back(back.id, "bo", "busy", operation_id="g-1")
    assert engine.give_back(back.id, "bo", "busy", operation_id="g-1") == given_back
    withdrawn = engine.withdraw("o5", "closed in the CRM", operation_id="w-1")
    assert engine.withdraw("o5", "closed in the CRM", operation_id="w-1") == withdrawn


def test_the_same_id_for_another_call_is_refused(any_store: Store) -> None:
    engine = _engine(any_store)
    _seed(engine)
    engine.pull("ana", operation_id="k")
    with pytest.raises(InvalidValue, match="was used for another call"):
        engine.pull("bo", operation_id="k")
    with pytest.raises(InvalidValue, match="was used for another call"):
        engine.resolve("o0", "ana", "won", operation_id="k")
    for bad in ("", " padded ", "x" * 201, "tab\there"):
        with pytest.raises(InvalidValue, match="operation_id"):
            engine.pull("ana", operation_id=bad)


def test_kept_results_are_forgotten_after_the_retention_by_the_sweep(any_store: Store) -> None:
    clock = FakeClock()
    engine = _engine(any_store, clock)
    _seed(engine)
    first = engine.pull("ana", operation_id="old")
    clock.advance(RETENTION + timedelta(minutes=1))
    engine.sweep()
    later = engine.pull("ana", operation_id="old")  # acts again: the id was forgotten
    assert later.released and later.released != first.released


def test_every_event_is_stored_with_its_units_operation_id(tmp_path: Path) -> None:
    import sqlite3

    store = open_store(f"sqlite:///{tmp_path / 'spe.db'}")
    engine = _engine(store)
    _seed(engine)
    engine.pull("ana", operation_id="mine")
    with engine.unit() as u:  # one unit, two calls: one id for all its events
        engine.pull("bo")
        engine.pull("bo")
        generated = u.operation
    store.close()
    rows = sqlite3.connect(tmp_path / "spe.db").execute("SELECT kind, op FROM events").fetchall()
    assert all(op for _, op in rows)
    assert [op for kind, op in rows if kind == "opportunity.released"] == [
        "mine",
        generated,
        generated,
    ]


def test_concurrent_calls_with_one_id_act_once(tmp_path: Path) -> None:
    url = schema_url() if POSTGRES_URL else f"sqlite:///{tmp_path / 'spe.db'}"
    store = open_store(url)
    engine = _engine(store)
    _seed(engine, 20)
    results = []

    def call() -> None:
        results.append(engine.pull("ana", 3, operation_id="same"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and all(r == results[0] for r in results)
    assert len(_released(store)) == 3
    store.close()
    if POSTGRES_URL:
        drop_test_schemas()


def test_generated_ids_are_unique_and_valid() -> None:
    ids = [new_operation_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(check_operation_id(i) == i for i in ids[:100])


@settings(max_examples=30)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["pull", "resolve"]),
            st.sampled_from(["ana", "bo"]),
            st.integers(0, 5),  # a small pool of ids: repeats are common
        ),
        max_size=25,
    )
)
def test_property_repeating_an_id_never_acts_twice(calls: list[tuple[str, str, int]]) -> None:
    """Conservation under retries: whatever the mix of new and repeated ids, each id acts
    at most once, a repeat returns the first result, and the log equals the state."""
    store = open_store("memory:")
    engine = _engine(store)
    _seed(engine, 30)
    first: dict[str, object] = {}
    for kind, member, n in calls:
        op = f"{kind}-{member}-{n}"
        if kind == "pull":
            result: object = engine.pull(member, operation_id=op)
        else:
            held = engine.held_by(member)
            if op not in first and not held:
                continue
            target = held[0].id if op not in first else first[op].id  # type: ignore[attr-defined]
            result = engine.resolve(target, member, "won", operation_id=op)
        if op in first:
            assert result == first[op]
        else:
            first[op] = result
    released = _released(store)
    assert len(released) == len(set(released))  # never released twice
    pulls = [r for op, r in first.items() if op.startswith("pull")]
    assert len(released) == sum(len(r.released) for r in pulls)  # type: ignore[attr-defined]
    state = {o.id: o for o in store.opportunities()}
    assert replay(list(store.events())) == state
    assert sum(o.status is OpportunityStatus.RESOLVED for o in state.values()) == len(
        [op for op in first if op.startswith("resolve")]
    )
