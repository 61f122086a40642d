"""The sync engine against the reference CRM under random interleavings.

People edit records (owners, in the same instant as SPE's writes or later),
records arrive, salespeople pull, syncs run and the clock moves by nothing, a
second or minutes (CRM timestamps are coarse and the skew window re-reads).
After every sync: nothing the CRM queued is lost or doubled in SPE, and no
released opportunity silently disagrees with the CRM about its owner (a
person's edit is either still to be read or has been seen as a conflict).
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from spe_core import Engine, OpportunityStatus, QueuePolicy, open_store
from spe_core.outbox import OutboxStatus
from spe_core.plugins import Plugins
from spe_core.sync import SyncEngine, SyncSettings
from spe_core.testing import FakeClock
from spe_core.testing.dictcrm import DictCrm, DictCrmAdapter

USERS = ("U1", "U2", "U3")


class CoarseCrm(DictCrm):
    """The reference CRM with minute-resolution modification stamps: edits seconds
    apart share a stamp, as edits within a second do in a real CRM."""

    def _stamp(self) -> datetime:
        return super()._stamp().replace(second=0, microsecond=0)


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.crm = CoarseCrm(self.clock)
        for user in USERS:
            self.crm.add_user(user, f"Rep {user}", "inside_sales")
        self.engine = Engine(
            open_store("memory:"),
            clock=self.clock,
            policy=QueuePolicy(target=50, daily_pull_cap=None, default_wip_limit=50),
            plugins=Plugins.create(entry_points=False),
        )
        self.sync = SyncEngine(self.engine, DictCrmAdapter(self.crm), sleep=self.clock_sleep)
        self.synced = False

    def clock_sleep(self, seconds: float) -> None:
        self.clock.advance(seconds=seconds)

    @rule(account=st.integers(0, 5))
    def crm_record_arrives(self, account: int) -> None:
        self.crm.add_record(Account=f"A{account}", Status="queued", Owner="U9")

    @precondition(lambda self: bool(self.crm.records))
    @rule(data=st.data(), owner=st.sampled_from(USERS))
    def a_person_changes_an_owner(self, data: st.DataObject, owner: str) -> None:
        released = sorted(
            o.external_id("dictcrm") or ""
            for o in self.engine.store.opportunities(OpportunityStatus.RELEASED)
        )
        # mostly a record SPE released: the edit a sync must not miss
        pool = released if released and data.draw(st.booleans()) else sorted(self.crm.records)
        crm_id = data.draw(st.sampled_from(pool))
        self.crm.edit(crm_id, Owner=owner)  # stamped now: maybe the instant SPE wrote

    @precondition(lambda self: self.synced)  # the members come with the first sync
    @rule(user=st.sampled_from(USERS), then=st.sampled_from(["", "sync", "sync+edit"]))
    def pull(self, user: str, then: str) -> None:
        pulled = self.engine.pull(f"u-{user}").released
        if then:  # the owner write goes out in the same instant
            self.sync_runs()
        if then == "sync+edit" and pulled:  # and a manager reassigns it at once
            crm_id = pulled[0].external_id("dictcrm") or ""
            self.crm.edit(crm_id, Owner="U3" if user != "U3" else "U2")

    @rule(seconds=st.sampled_from([0, 1, 5, 30, 400]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule()
    def sync_runs(self) -> None:
        # a record modified before this sync's signpost has been read by now
        self.settled_before = self.clock.now() - SyncSettings().clock_skew
        self.sync.run()
        self.synced = True
        self.nothing_lost_or_doubled()
        self.no_silent_owner_disagreement()

    @invariant()
    def one_spe_opportunity_per_crm_record(self) -> None:
        crm_ids = [o.external_id("dictcrm") for o in self.engine.store.opportunities()]
        assert len(crm_ids) == len(set(crm_ids))

    def nothing_lost_or_doubled(self) -> None:
        by_crm: dict[str, int] = {}
        for opp in self.engine.store.opportunities():
            crm_id = opp.external_id("dictcrm")
            assert crm_id is not None
            by_crm[crm_id] = by_crm.get(crm_id, 0) + 1
        assert all(n == 1 for n in by_crm.values()), by_crm
        for crm_id, record in self.crm.records.items():
            if record["Modified"] < self.settled_before and record.get("Account"):
                assert crm_id in by_crm, f"{crm_id} was read but is not in SPE"

    def no_silent_owner_disagreement(self) -> None:
        with self.engine.store.transaction() as tx:
            pending = {
                i.key for i in tx.outbox_items("dictcrm") if i.status is OutboxStatus.PENDING
            }
        for opp in self.engine.store.opportunities(OpportunityStatus.RELEASED):
            crm_id = opp.external_id("dictcrm")
            record = self.crm.records[crm_id or ""]
            if opp.id in pending or record["Modified"] >= self.settled_before:
                continue  # SPE's write or the person's edit is still on its way
            assert record["Owner"] == (opp.owner_id or "").removeprefix("u-"), (
                f"{opp.id}: SPE says {opp.owner_id}, the CRM {record['Owner']}"
            )


SyncMachine.TestCase.settings = settings(stateful_step_count=30, deadline=None)
TestSyncMachine = SyncMachine.TestCase
