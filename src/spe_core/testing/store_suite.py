"""The store conformance suite: every store must pass it.

Subclass :class:`StoreConformance` in your test module and provide a ``store``
fixture that yields a fresh, empty store::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self):
            s = MyStore(...)
            yield s
            s.close()

The suite checks the contract written in :mod:`spe_core.store.base`:
orders, counts, atomicity of transactions and the event log.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import attrs
import pytest

from spe_core import queue
from spe_core.errors import StoreError
from spe_core.events import MemberUpserted, QueueReplenished
from spe_core.model import Member, Opportunity, OpportunityStatus
from spe_core.store.base import Store

__all__ = ["StoreConformance"]

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)


def _opp(i: int, **kw: object) -> Opportunity:
    fields: dict[str, object] = {
        "id": f"o{i:03d}",
        "account_id": f"a{i % 7}",
        "queued_at": T0 + timedelta(minutes=i % 5),
        "tier": i % 3,
        "score": float(i % 4),
        "status": OpportunityStatus.QUEUED,
    }
    fields.update(kw)
    return Opportunity(**fields)  # type: ignore[arg-type]


def _put(store: Store, *opps: Opportunity) -> None:
    with store.transaction() as tx:
        for o in opps:
            tx.put_opportunity(o, queue.rank_key(o))


class StoreConformance:
    """Contract tests for a :class:`~spe_core.store.base.Store` implementation."""

    # members ----------------------------------------------------------------------
    def test_members_round_trip_and_order(self, store: Store) -> None:
        members = [Member(f"m{i}", f"Member {i}", "inside_sales", skills={"fr"}) for i in (3, 1, 2)]
        with store.transaction() as tx:
            for m in members:
                tx.put_member(m)
        with store.transaction() as tx:
            assert [m.id for m in tx.members()] == ["m1", "m2", "m3"]
            assert tx.get_member("m3") == members[0]
            assert tx.get_member("nobody") is None
            tx.put_member(attrs.evolve(members[0], name="Renamed"))
        with store.transaction() as tx:
            m3 = tx.get_member("m3")
            assert m3 is not None
            assert m3.name == "Renamed"

    # opportunities ----------------------------------------------------------------
    def test_opportunity_round_trip_keeps_every_field(self, store: Store) -> None:
        opp = _opp(
            1,
            required_skills={"de", "fr"},
            not_before=T0 + timedelta(hours=1),
            expires_at=T0 + timedelta(days=3),
            external_ids={"salesforce": "00Q000000000001AAA"},
            excluded={"m9"},
            source_campaign="spring",
        )
        _put(store, opp)
        with store.transaction() as tx:
            assert tx.get_opportunity(opp.id) == opp
            assert tx.get_opportunity("missing") is None
        assert list(store.opportunities()) == [opp]

    def test_new_opportunity_needs_a_rank(self, store: Store) -> None:
        with pytest.raises(StoreError), store.transaction() as tx:
            tx.put_opportunity(_opp(1))

    def test_iter_ranked_follows_rank_order(self, store: Store) -> None:
        opps = [_opp(i) for i in range(40)]
        _put(store, *opps)
        expected = [o.id for o in sorted(opps, key=queue.rank_key)]
        with store.transaction() as tx:
            got = [o.id for o in tx.iter_ranked(OpportunityStatus.QUEUED)]
        assert got == expected

    def test_iter_ranked_tolerates_writes_while_iterating(self, store: Store) -> None:
        opps = [_opp(i) for i in range(70)]
        _put(store, *opps)
        seen: list[str] = []
        with store.transaction() as tx:
            for o in tx.iter_ranked(OpportunityStatus.QUEUED):
                seen.append(o.id)
                if len(seen) % 2:
                    tx.put_opportunity(
                        attrs.evolve(o, status=OpportunityStatus.RELEASED, owner_id="m1")
                    )
        assert sorted(seen) == sorted(o.id for o in opps)
        assert len(seen) == len(set(seen))
        with store.transaction() as tx:
            assert tx.count(OpportunityStatus.QUEUED) == 35
            assert tx.held_by("m1") == 35
            left = [o.id for o in tx.iter_ranked(OpportunityStatus.QUEUED)]
        assert left == [i for n, i in enumerate(seen) if n % 2]

    def test_abandoned_iteration_loses_nothing(self, store: Store) -> None:
        _put(store, *[_opp(i) for i in range(10)])
        with store.transaction() as tx:
            it = tx.iter_ranked(OpportunityStatus.QUEUED)
            first = next(it)
            del it
        with store.transaction() as tx:
            ids = [o.id for o in tx.iter_ranked(OpportunityStatus.QUEUED)]
        assert len(ids) == 10
        assert ids[0] == first.id

    def test_counts_by_status(self, store: Store) -> None:
        _put(store, *[_opp(i) for i in range(5)])
        _put(store, *[_opp(i, status=OpportunityStatus.BACKLOG) for i in range(5, 8)])
        with store.transaction() as tx:
            assert tx.count(OpportunityStatus.QUEUED) == 5
            assert tx.count(OpportunityStatus.BACKLOG) == 3
            assert tx.count(OpportunityStatus.RELEASED) == 0
            oldest = tx.oldest(OpportunityStatus.QUEUED)
            assert oldest is not None
            assert oldest.id == "o000"

    def test_sweep_iterators_order_and_filter(self, store: Store) -> None:
        released = [
            _opp(
                i,
                status=OpportunityStatus.RELEASED,
                owner_id="m1",
                released_at=T0,
                lease_expires_at=T0 + timedelta(minutes=10 - i),
            )
            for i in range(4)
        ]
        expiring = [_opp(10 + i, expires_at=T0 + timedelta(minutes=i)) for i in range(3)]
        _put(store, *released, *expiring)
        now = T0 + timedelta(minutes=8)
        with store.transaction() as tx:
            assert [o.id for o in tx.iter_lease_expired(now)] == ["o003", "o002"]
            assert [o.id for o in tx.iter_expiring(T0 + timedelta(minutes=1))] == [
                "o010",
                "o011",
            ]
            before = [o.id for o in tx.iter_queued_before(T0 + timedelta(minutes=1))]
        assert before == sorted(
            (o.id for o in expiring if o.queued_at and o.queued_at <= T0 + timedelta(minutes=1)),
            key=lambda i: (next(o.queued_at for o in expiring if o.id == i), i),
        )

    def test_pull_counters(self, store: Store) -> None:
        day = date(2026, 1, 5)
        with store.transaction() as tx:
            assert tx.pulls_on("m1", day) == 0
            tx.add_pulls("m1", day, 2)
            tx.add_pulls("m1", day, 1)
            tx.add_pulls("m1", day + timedelta(days=1), 5)
        with store.transaction() as tx:
            assert tx.pulls_on("m1", day) == 3
            assert tx.pulls_on("m2", day) == 0

    # atomicity --------------------------------------------------------------------
    def test_failed_transaction_leaves_nothing_behind(self, store: Store) -> None:
        _put(store, _opp(1), _opp(2))

        class Boom(Exception):
            pass

        with pytest.raises(Boom), store.transaction() as tx:
            for o in tx.iter_ranked(OpportunityStatus.QUEUED):
                tx.put_opportunity(
                    attrs.evolve(o, status=OpportunityStatus.RELEASED, owner_id="m1")
                )
            tx.put_opportunity(_opp(3), queue.rank_key(_opp(3)))
            tx.put_member(Member("m1", "Ann", "inside_sales"))
            tx.add_pulls("m1", date(2026, 1, 5), 2)
            tx.set_meta("cursor", "x")
            tx.append(
                QueueReplenished(
                    at=T0, moved=0, level_before=0, level_after=0, target=1, zone="red", shortfall=1
                )
            )
            raise Boom
        with store.transaction() as tx:
            assert tx.count(OpportunityStatus.QUEUED) == 2
            assert tx.held_by("m1") == 0
            assert tx.get_opportunity("o003") is None
            assert tx.get_member("m1") is None
            assert tx.pulls_on("m1", date(2026, 1, 5)) == 0
            assert tx.get_meta("cursor") is None
            assert [o.id for o in tx.iter_ranked(OpportunityStatus.QUEUED)] == ["o002", "o001"]
        assert list(store.events()) == []

    # events and metadata ------------------------------------------------------------
    def test_event_log_sequence_and_paging(self, store: Store) -> None:
        with store.transaction() as tx:
            recorded = [
                tx.append(MemberUpserted(at=T0, member=Member(f"m{i}", "M", "promotions")))
                for i in range(5)
            ]
        assert [r.seq for r in recorded] == [1, 2, 3, 4, 5]
        assert list(store.events()) == recorded
        assert [r.seq for r in store.events(after=2)] == [3, 4, 5]
        assert [r.seq for r in store.events(after=1, limit=2)] == [2, 3]

    def test_events_read_in_the_transaction(self, store: Store) -> None:
        with store.transaction() as tx:
            recorded = [
                tx.append(MemberUpserted(at=T0, member=Member(f"m{i}", "M", "promotions")))
                for i in range(4)
            ]
            assert tx.events() == recorded  # its own appends, before the commit
            assert [r.seq for r in tx.events(after=1, limit=2)] == [2, 3]
            assert tx.events(after=4) == []
            # the store's own read inside a transaction must not wait for it either
            assert [r.seq for r in store.events(after=3)] in ([], [4])

    def test_busy_time_replaced_and_read(self, store: Store) -> None:
        from spe_core.model import Busy

        hour = timedelta(hours=1)
        busy = [Busy(f"b{i}", "m1", T0 + i * hour, T0 + i * hour + hour / 2) for i in range(3)]
        with store.transaction() as tx:
            tx.replace_busy("m1", T0, T0 + 3 * hour, busy)
        with store.transaction() as tx:
            assert list(tx.iter_busy("m1", T0, T0 + 3 * hour)) == busy
            tx.replace_busy("m1", T0, T0 + 3 * hour, busy[1:])
            assert [b.id for b in tx.iter_busy("m1", T0, T0 + 3 * hour)] == ["b1", "b2"]

    def test_meta(self, store: Store) -> None:
        with store.transaction() as tx:
            assert tx.get_meta("k") is None
            tx.set_meta("k", "1")
            tx.set_meta("k", "2")
        with store.transaction() as tx:
            assert tx.get_meta("k") == "2"

    # outbox and quarantine ----------------------------------------------------------------
    def test_outbox_orders_due_items_and_keeps_statuses(self, store: Store) -> None:
        from spe_core.outbox import OutboxItem, OutboxStatus, Quarantined

        items = [
            OutboxItem("crm", "opportunity", f"o{i}", {"status": "released", "n": i}, seq=10 - i)
            for i in range(4)
        ]
        later = attrs.evolve(items[0], next_attempt_at=T0 + timedelta(minutes=5), attempts=1)
        with store.transaction() as tx:
            for item in items:
                tx.outbox_put(item)
            tx.outbox_put(later)
            tx.outbox_put(OutboxItem("other", "task", "t1", {}, seq=1))
            tx.outbox_put(attrs.evolve(items[3], status=OutboxStatus.QUARANTINED))
        with store.transaction() as tx:
            assert [i.key for i in tx.outbox_due("crm", T0, 10)] == ["o2", "o1"]
            assert [i.key for i in tx.outbox_due("crm", T0, 1)] == ["o2"]
            assert [i.key for i in tx.outbox_due("crm", T0 + timedelta(minutes=5), 10)] == [
                "o2",
                "o1",
                "o0",
            ]
            assert tx.outbox_get("crm", "opportunity", "o0") == later
            assert [i.key for i in tx.outbox_items("crm", "quarantined")] == ["o3"]
            assert len(tx.outbox_items("crm")) == 4
            tx.outbox_delete("crm", "opportunity", "o1")
            tx.outbox_delete("crm", "opportunity", "missing")
        with store.transaction() as tx:
            assert tx.outbox_get("crm", "opportunity", "o1") is None
            q = Quarantined("crm", "inbound", "opportunities", "00Q1", "no Company", T0, "{}")
            tx.quarantine_put(q)
            tx.quarantine_put(attrs.evolve(q, reason="still no Company"))
            tx.quarantine_put(attrs.evolve(q, key="00Q0"))
        with store.transaction() as tx:
            assert [(x.key, x.reason) for x in tx.quarantined("crm")] == [
                ("00Q0", "no Company"),
                ("00Q1", "still no Company"),
            ]
            assert tx.quarantined("other") == []

    # tasks ----------------------------------------------------------------------------------
    def test_tasks_round_trip_loads_and_queues(self, store: Store) -> None:
        from spe_core.model import Task, TaskStatus

        def t(i: int, **kw: object) -> Task:
            fields: dict[str, object] = {
                "id": f"t{i}",
                "kind": "admin",
                "account_id": "a",
                "created_at": T0 + timedelta(minutes=i),
            }
            fields.update(kw)
            return Task(**fields)  # type: ignore[arg-type]

        tasks = [
            t(
                1,
                status=TaskStatus.ASSIGNED,
                assignee_id="m1",
                weight=2.0,
                accept_by=T0 + timedelta(hours=1),
                complete_by=T0 + timedelta(hours=8),
            ),
            t(2, status=TaskStatus.ACCEPTED, assignee_id="m1", complete_by=T0),
            t(3, status=TaskStatus.ASSIGNED, assignee_id="m2", accept_by=T0 + timedelta(hours=2)),
            t(4, queue_role="customer_service", unassigned_reason="nobody", priority=1),
            t(5, queue_role="customer_service", unassigned_reason="nobody", priority=3),
            t(6, status=TaskStatus.COMPLETED, assignee_id="m1"),
        ]
        with store.transaction() as tx:
            for task in tasks:
                tx.put_task(task)
        with store.transaction() as tx:
            assert tx.get_task("t1") == tasks[0]
            assert tx.get_task("nope") is None
            assert tx.open_task_loads() == {"m1": (2, 3.0), "m2": (1, 1.0)}
            assert [x.id for x in tx.iter_open_tasks("m1")] == ["t1", "t2"]
            assert [x.id for x in tx.iter_queued_tasks("customer_service")] == ["t4", "t5"]
            assert [x.id for x in tx.iter_overdue_tasks(T0 + timedelta(hours=1))] == ["t1", "t2"]
            tx.put_task(attrs.evolve(tasks[0], status=TaskStatus.COMPLETED))
        with store.transaction() as tx:
            assert tx.open_task_loads() == {"m1": (1, 1.0), "m2": (1, 1.0)}
