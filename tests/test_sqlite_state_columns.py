"""SQLite keeps an opportunity's state in columns: a transition writes those alone."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spe_core.engine import Engine
from spe_core.model import Member, Opportunity, OpportunityStatus
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy
from spe_core.store.sqlite import SQLiteStore
from spe_core.testing import FakeClock

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def _engine(path: Path) -> tuple[Engine, FakeClock]:
    clock = FakeClock(T0)
    engine = Engine(
        SQLiteStore(path),
        policy=QueuePolicy(lease=timedelta(hours=1)),
        clock=clock,
        plugins=Plugins.create(entry_points=False),
    )
    engine.upsert_members(
        [Member("ann", "Ann", "inside_sales"), Member("bo", "Bo", "inside_sales")]
    )
    return engine, clock


def _row(path: Path, oid: str) -> tuple[object, ...]:
    conn = sqlite3.connect(path)
    try:
        row: tuple[object, ...] = conn.execute(
            "SELECT data, status, owner_id, excluded_ids, outcome FROM opportunities WHERE id = ?",
            (oid,),
        ).fetchone()
        return row
    finally:
        conn.close()


def test_transitions_write_the_state_columns_and_leave_the_json(tmp_path: Path) -> None:
    path = tmp_path / "spe.db"
    engine, _ = _engine(path)
    engine.enqueue([Opportunity("o1", "a1"), Opportunity("o2", "a2")])
    data = _row(path, "o1")[0]

    assert engine.pull("ann").released[0].id == "o1"
    engine.give_back("o1", "ann", "not mine")
    assert _row(path, "o1") == (data, "queued", None, '["ann"]', None)
    assert engine.pull("bo").released[0].id == "o1"
    engine.resolve("o1", "bo", "won")
    assert _row(path, "o1") == (data, "resolved", "bo", '["ann"]', "won")

    # a reopened store (no cache) reads the state from the columns
    engine.store.close()
    engine, _ = _engine(path)
    o1 = engine.opportunity("o1")
    assert (o1.status, o1.owner_id, o1.excluded, o1.outcome) == (
        OpportunityStatus.RESOLVED,
        "bo",
        frozenset({"ann"}),
        "won",
    )
    assert o1.resolved_at == T0
    assert {o.id: o for o in engine.store.opportunities()}["o1"] == o1

    # a change to the description writes the JSON again
    assert engine.link("o2", "salesforce", "006A")
    assert _row(path, "o2")[0] != data
    assert engine.opportunity("o2").external_id("salesforce") == "006A"
    engine.store.close()


def test_the_lease_sweep_reads_and_writes_columns(tmp_path: Path) -> None:
    path = tmp_path / "spe.db"
    engine, clock = _engine(path)
    engine.enqueue([Opportunity("o1", "a1")])
    engine.pull("ann")
    clock.advance(timedelta(hours=2))
    assert engine.expire_leases() == ("o1",)
    assert _row(path, "o1")[1:] == ("queued", None, None, None)
    assert engine.pull("bo").released[0].owner_id == "bo"
    engine.store.close()


def test_the_migration_reads_old_rows_state_as_the_codec_does() -> None:
    from spe_core import codec
    from spe_core.store.sqlite import _state, _stored_state

    later = T0 + timedelta(minutes=5, microseconds=7)
    values = [
        Opportunity("o1", "a1", T0, status=OpportunityStatus.QUEUED, excluded={"b", "a"}),
        Opportunity(
            "o2",
            "a1",
            T0,
            status="released",
            owner_id="ann",
            released_at=later,
            lease_expires_at=later + timedelta(hours=1),
        ),
        Opportunity(
            "o3",
            "a1",
            T0,
            status="resolved",
            owner_id="ann",
            released_at=T0,
            outcome="won",
            resolved_at=later,
        ),
    ]
    for value in values:
        text = codec.dumps(value)
        assert _stored_state(text) == _state(value)


def test_pull_counts_read_with_the_member_answer_for_every_day(tmp_path: Path) -> None:
    """The pull counts a pull reads with the member (its latest days with pulls) give
    the same answer for any day as the store's own query."""
    from datetime import date, timedelta

    from spe_core import Member
    from spe_core.store import open_store

    store = open_store(f"sqlite:///{tmp_path / 'counts.db'}")
    first = date(2026, 1, 5)
    pulled = {first + timedelta(days=d): c for d, c in [(0, 2), (1, 1), (3, 4), (6, 1), (7, 3)]}
    with store.transaction() as tx:
        tx.put_member(Member("ana", "Ana", "inside_sales"))
        for day, count in pulled.items():
            tx.add_pulls("ana", day, count)
    for offset in range(-2, 11):
        day = first + timedelta(days=offset)
        with store.transaction() as tx:
            tx.expect_pull()  # type: ignore[attr-defined]
            assert tx.get_member("ana") is not None
            assert tx.pulls_on("ana", day) == pulled.get(day, 0), day
    store.close()
