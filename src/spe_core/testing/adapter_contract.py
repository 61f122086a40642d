"""The adapter contract suite: every CRM adapter must pass it.

Subclass :class:`AdapterContract` and provide a ``harness`` fixture yielding
a :class:`CrmHarness`: the adapter under test plus a handful of operations on
the CRM behind it (seed a user or a queued record, read a record back, edit
an owner by hand, inject faults). The suite then runs the same scenarios on
every adapter: members and roles in, queued records in, owners and statuses
out, conflicts, malformed records, transient and per-record failures, and
idempotent reruns.

The harness's ``clock`` is shared by the engine and the CRM (emulators take
an injectable clock), so bookmarks and signposts are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import pytest

from spe_core.adapter import Adapter
from spe_core.clock import FakeClock
from spe_core.engine import Engine
from spe_core.model import OpportunityStatus
from spe_core.plugins import Plugins
from spe_core.queue import QueuePolicy
from spe_core.store.memory import MemoryStore
from spe_core.sync import SyncEngine, SyncSettings

__all__ = ["AdapterContract", "CrmHarness"]


class CrmHarness(Protocol):
    """What the contract suite needs to drive one CRM behind one adapter."""

    adapter: Adapter
    clock: FakeClock

    def add_user(self, name: str, role: str) -> str:
        """Create a CRM user with an SPE role; returns the CRM user id."""
        ...

    def add_queued(self, account: str, tier: int, score: float) -> str:
        """Create a record SPE should queue; returns its CRM id."""
        ...

    def add_malformed(self) -> str:
        """Create a record marked queued that cannot be mapped (e.g. no account)."""
        ...

    def read_back(self, crm_id: str) -> dict[str, Any]:
        """The record's SPE view: ``{"status": ..., "owner": crm user id or None, "key": ...}``."""
        ...

    def edit_owner(self, crm_id: str, owner: str) -> None:
        """A person sets the record's owner by hand in the CRM."""
        ...

    def fail_next_writes(self, count: int) -> None:
        """Make the next ``count`` write calls fail transiently (rate limit or 5xx)."""
        ...

    def fail_record(self, crm_id: str) -> None:
        """Make every write to this record fail permanently inside an otherwise fine batch."""
        ...

    def record_count(self) -> int:
        """How many opportunity records the CRM holds."""
        ...


class AdapterContract:
    """Scenarios every adapter must pass. Provide a ``harness`` fixture."""

    @pytest.fixture
    def rig(self, harness: CrmHarness) -> Iterator[tuple[CrmHarness, Engine, SyncEngine]]:
        store = MemoryStore()
        engine = Engine(
            store,
            clock=harness.clock,
            policy=QueuePolicy(target=1000, daily_pull_cap=None, default_wip_limit=50),
            plugins=Plugins.create(entry_points=False),
        )

        def sleep(seconds: float) -> None:
            harness.clock.advance(seconds=seconds)

        sync = SyncEngine(engine, harness.adapter, SyncSettings(), sleep=sleep)
        yield harness, engine, sync
        store.close()

    @staticmethod
    def _seed(h: CrmHarness, queued: int) -> tuple[str, str, list[str]]:
        ana = h.add_user("Ana Ruiz", "inside_sales")
        ben = h.add_user("Ben Okafor", "inside_sales")
        records = [h.add_queued(f"acct-{i}", i % 3, float(i)) for i in range(queued)]
        h.clock.advance(minutes=10)
        return ana, ben, records

    @staticmethod
    def _bring_in(engine: Engine, sync: SyncEngine) -> None:
        """Sync the CRM's queued records into the backlog, replenish the queue from it,
        and confirm the queue to the CRM."""
        sync.run()
        engine.replenish()
        sync.run()

    @staticmethod
    def _member_id(engine: Engine, crm_id: str, crm: str) -> str:
        return next(m.id for m in engine.members() if m.external_id(crm) == crm_id)

    def test_members_and_queued_records_come_in(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, _, records = self._seed(h, 12)
        report = sync.run()
        assert report.streams["opportunities"].applied == 12
        member = engine.member(self._member_id(engine, ana, h.adapter.name))
        assert member.role.value == "inside_sales"
        assert member.name == "Ana Ruiz"
        # records marked queued in the CRM wait in the backlog; replenishment decides
        assert engine.queue_status().backlog == 12
        assert len(engine.replenish().moved) == 12
        linked = {o.external_id(h.adapter.name) for o in engine.store.opportunities()}
        assert linked == set(records)

    def test_owner_and_status_go_out_exactly(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, ben, _ = self._seed(h, 30)
        self._bring_in(engine, sync)
        crm = h.adapter.name
        a, b = self._member_id(engine, ana, crm), self._member_id(engine, ben, crm)
        for opp in engine.pull(a, 5).released[:2]:
            engine.resolve(opp.id, a, "appointment_set")
        engine.pull(b, 4)
        sync.run()
        for opp in engine.store.opportunities():
            crm_id = opp.external_id(crm)
            assert crm_id is not None
            back = h.read_back(crm_id)
            expected_status = opp.outcome.value if opp.outcome else opp.status.value
            assert back["status"] == expected_status, (opp, back)
            if opp.status is OpportunityStatus.RELEASED or opp.outcome is not None:
                owner = engine.member(opp.owner_id or "").external_id(crm)
                assert back["owner"] == owner
        again = sync.run()
        assert (again.applied, again.written, again.conflicts) == (0, 0, 0)

    def test_transient_failures_are_retried(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, _, _ = self._seed(h, 8)
        self._bring_in(engine, sync)
        engine.pull(self._member_id(engine, ana, h.adapter.name), 8)
        h.fail_next_writes(2)
        report = sync.run()
        assert report.retried >= 2
        assert report.written == 8
        assert report.pending == 0

    def test_a_bad_record_is_quarantined_and_the_rest_syncs(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        self._seed(h, 5)
        bad = h.add_malformed()
        h.clock.advance(minutes=10)
        report = sync.run()
        assert report.streams["opportunities"].quarantined == 1
        assert engine.queue_status().backlog == 5
        (q,) = sync.quarantined()
        assert q.key == bad
        assert q.reason

    def test_a_permanently_failing_write_is_quarantined(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, _, _ = self._seed(h, 4)
        self._bring_in(engine, sync)
        member = self._member_id(engine, ana, h.adapter.name)
        pulled = engine.pull(member, 4).released
        victim = pulled[0].external_id(h.adapter.name)
        assert victim is not None
        h.fail_record(victim)
        for _ in range(4):
            sync.run()
            h.clock.advance(minutes=10)
        outbound = [q for q in sync.quarantined() if q.direction == "outbound"]
        assert [q.key for q in outbound] == [pulled[0].id]
        for opp in pulled[1:]:
            crm_id = opp.external_id(h.adapter.name)
            assert crm_id is not None
            assert h.read_back(crm_id)["status"] == "released"

    def test_a_hand_edited_owner_is_a_conflict_the_crm_wins(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, ben, _ = self._seed(h, 3)
        self._bring_in(engine, sync)
        (opp,) = engine.pull(self._member_id(engine, ana, h.adapter.name)).released
        sync.run()
        crm_id = opp.external_id(h.adapter.name)
        assert crm_id is not None
        h.clock.advance(minutes=20)
        h.edit_owner(crm_id, ben)
        h.clock.advance(minutes=10)
        assert sync.run().conflicts == 1
        assert engine.opportunity(opp.id).status is OpportunityStatus.WITHDRAWN
        assert h.read_back(crm_id)["owner"] == ben

    def test_reruns_never_duplicate_records(
        self, rig: tuple[CrmHarness, Engine, SyncEngine]
    ) -> None:
        h, engine, sync = rig
        ana, _, _ = self._seed(h, 6)
        before = h.record_count()
        for _ in range(3):
            sync.run()
            h.clock.advance(minutes=10)
        engine.replenish()
        engine.pull(self._member_id(engine, ana, h.adapter.name), 3)
        for _ in range(3):
            sync.run()
            h.clock.advance(minutes=10)
        assert h.record_count() == before
