"""PostgreSQL event numbering: no counter locked to commit, yet every reader sees a
gap-free log in commit order and never skips an event that commits out of order."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from spe_core import Engine, Member, Opportunity, QueuePolicy
from spe_core.events import MemberUpserted, OpportunityReleased, Recorded, replay
from spe_core.plugins import Plugins
from spe_core.testing import FakeClock
from tests.pg import drop_test_schemas, needs_postgres, schema_url

pytestmark = [needs_postgres, pytest.mark.postgres]

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    drop_test_schemas()


def _event(name: str) -> MemberUpserted:
    return MemberUpserted(at=T0, member=Member(name, name, "promotions"))


def test_a_reader_never_skips_an_event_committed_out_of_order() -> None:
    """Two transactions append; the one that appended second commits first. A reader
    polling in between sees only what committed, numbered in commit order, and its
    cursor never passes the first transaction's event."""
    from spe_core.store.postgres import PostgresStore

    url = schema_url()
    first, second, reader = (PostgresStore(url, max_size=2) for _ in range(3))
    try:
        with first.transaction() as a:
            a.append(_event("early"))
            a.get_meta("flush")  # the row reaches the server now: the smaller id
            with second.transaction() as b:
                b.append(_event("late"))
            # "late" committed while "early" is in flight
            seen = list(reader.events())
            assert [(r.seq, r.event.member.id) for r in seen] == [(1, "late")]  # type: ignore[attr-defined]
            cursor = seen[-1].seq
            assert list(reader.events(after=cursor)) == []
            # a reader in a transaction (the sync's outbox cursor) sees the same
            with reader.transaction() as tx:
                assert [r.seq for r in tx.events(after=0)] == [1]
                assert tx.events(after=cursor) == []
        later = list(reader.events(after=cursor))
        assert [(r.seq, r.event.member.id) for r in later] == [(2, "early")]  # type: ignore[attr-defined]
        assert [r.seq for r in a.committed_events()] == [2]
        assert [r.seq for r in b.committed_events()] == [1]
        assert [r.seq for r in reader.events()] == [1, 2]
    finally:
        for store in (first, second, reader):
            store.close()


def test_an_appending_transaction_holds_no_lock_another_appender_waits_for() -> None:
    """The old design locked a one-row counter from the first append to the commit, so a
    second appender waited for the first to commit. Now it does not."""
    from spe_core.store.postgres import PostgresStore

    url = schema_url()
    first, second = (PostgresStore(url + "&lock_timeout=1s", max_size=1) for _ in range(2))
    try:
        with first.transaction() as a:
            a.append(_event("a"))
            a.get_meta("flush")  # the row reaches the server now
            with second.transaction() as b:
                b.append(_event("b"))
                b.get_meta("flush")  # would raise StoreLocked after 1 s if it waited
        # numbered together by the first reader after both commits: in append (id) order
        log = [(r.seq, r.event.member.id) for r in first.events()]  # type: ignore[attr-defined]
        assert log == [(1, "a"), (2, "b")]
    finally:
        first.close()
        second.close()


def test_a_rolled_back_append_leaves_no_gap() -> None:
    from spe_core.store.postgres import PostgresStore

    store = PostgresStore(schema_url(), max_size=2)
    try:
        with store.transaction() as tx:
            tx.append(_event("m1"))
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.append(_event("lost"))
            raise RuntimeError
        with store.transaction() as tx:
            tx.append(_event("m2"))
        assert [(r.seq, r.event.member.id) for r in store.events()] == [(1, "m1"), (2, "m2")]  # type: ignore[attr-defined]
    finally:
        store.close()


def test_threads_pulling_and_resolving_leave_a_gap_free_log_equal_to_the_state() -> None:
    """N threads pull and resolve while a reader follows the log with a cursor: the
    reader sees every event once, in the final order, and the log replays to the state."""
    from spe_core.store.postgres import PostgresStore

    threads, n = 8, 240
    store = PostgresStore(schema_url(), max_size=threads + 2)
    policy = QueuePolicy(target=n, daily_pull_cap=None, default_wip_limit=2, lease=None)

    def engine() -> Engine:
        return Engine(
            store, policy=policy, clock=FakeClock(T0), plugins=Plugins.create(entry_points=False)
        )

    setup = engine()
    setup.upsert_members(Member(f"w{i}", f"W{i}", "inside_sales") for i in range(threads))
    setup.enqueue(Opportunity(f"o{i:04d}", f"a{i}", T0, score=float(i % 7)) for i in range(n))
    errors: list[BaseException] = []
    followed: list[Recorded] = []
    done = threading.Event()

    def work(index: int) -> None:
        try:
            e = engine()
            member = f"w{index}"
            while True:
                released = e.pull(member, 2).released
                if not released:
                    return
                for opp in released:
                    e.resolve(opp.id, member, "won")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def follow() -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                page = list(store.events(after=cursor))
                for r in page:
                    assert r.seq == cursor + 1, f"reader skipped from {cursor} to {r.seq}"
                    cursor = r.seq
                    followed.append(r)
                if finished and not page:
                    return
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    reader = threading.Thread(target=follow)
    reader.start()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(300)
    done.set()
    reader.join(60)
    try:
        assert errors == []
        log = list(store.events())
        assert [r.seq for r in log] == list(range(1, len(log) + 1)), "gap in the log"
        assert followed == log, "the following reader missed or reordered events"
        state = {o.id: o for o in store.opportunities()}
        assert replay(log) == state, "the event log does not equal the state"
        released = Counter(
            r.event.opportunity_id for r in log if isinstance(r.event, OpportunityReleased)
        )
        assert len(released) == n and set(released.values()) == {1}
        assert all(o.status.value == "resolved" for o in state.values())
    finally:
        store.close()


def test_a_store_of_the_previous_schema_migrates_with_its_log() -> None:
    """A schema at version 3 (events numbered by a locked counter) opens: its events keep
    their numbers and new ones continue the log."""
    import psycopg

    from spe_core import codec
    from spe_core.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore, micros

    url = schema_url()
    schema = url.split("schema=")[1].split("&")[0]
    from tests.pg import URL

    with psycopg.connect(URL.split("?")[0], autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        conn.execute(f'SET search_path TO "{schema}"'.encode())
        conn.execute(
            "CREATE TABLE spe_schema_migrations (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for number in range(3):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement.encode())
            conn.execute("INSERT INTO spe_schema_migrations (version) VALUES (%s)", (number + 1,))
        for seq in (1, 2, 3):
            e = _event(f"old{seq}")
            conn.execute(
                "INSERT INTO events (seq, at, kind, data) VALUES (%s, %s, %s, %s)",
                (seq, micros(e.at), e.kind, codec.dumps(e)),
            )
        conn.execute("UPDATE event_seq SET last = 3")
    store = PostgresStore(url, max_size=2)
    try:
        with store.transaction() as tx:
            tx.append(_event("new"))
        log = list(store.events())
        assert [(r.seq, r.event.member.id) for r in log] == [  # type: ignore[attr-defined]
            (1, "old1"),
            (2, "old2"),
            (3, "old3"),
            (4, "new"),
        ]
        with store.pool.connection() as conn:
            conn.execute(f'SET search_path TO "{schema}"'.encode())
            row = conn.execute("SELECT MAX(version) FROM spe_schema_migrations").fetchone()
        assert row is not None and row[0] == SCHEMA_VERSION
    finally:
        store.close()


def test_listeners_hear_final_positions_when_the_provisional_ones_were_wrong() -> None:
    """Another process's events commit unnumbered first, so what ``record`` returned
    (counting from the log's end as this store last saw it) is not the final place:
    the listeners still hear the position the log gives the event."""
    from spe_core import hookimpl
    from spe_core.store.postgres import PostgresStore

    heard: list[Recorded] = []

    class Listener:
        @hookimpl
        def spe_event(self, recorded: Recorded) -> None:
            heard.append(recorded)

    url = schema_url()
    mine, other = PostgresStore(url, max_size=2), PostgresStore(url, max_size=2)
    try:
        plugins = Plugins.create(entry_points=False)
        plugins.register(Listener())
        engine = Engine(mine, clock=FakeClock(T0), plugins=plugins)
        quiet = Engine(other, clock=FakeClock(T0), plugins=Plugins.create(entry_points=False))
        quiet.upsert_members([Member("m0", "M0", "inside_sales")])  # committed, not numbered
        with engine.unit() as u:
            engine.upsert_members([Member("m1", "M1", "inside_sales")])
            provisional = [r.seq for r in u.recorded]
        assert provisional == [1]  # this store had seen an empty log
        log = list(mine.events())
        assert [r.event.member.id for r in log] == ["m0", "m1"]  # type: ignore[attr-defined]
        assert heard == [log[1]]
    finally:
        mine.close()
        other.close()
